"""The marks on a page: ink split into connected parts, then into one character or a line of them.

Everything here works on the ink mask ``images.normalise`` finds. The number of parts that may
make up a character or a line is capped (``MAX_MARKS``), and grouping them takes time about
proportional to their number, so a page of dots or noise is refused with a clear message in a
fraction of a second instead of being grouped for minutes.
"""

from __future__ import annotations

import bisect

import numpy as np

from handwritten import framing

# A line of characters rarely has more than about 100 parts (broken strokes, dots); a sheet of
# dots, graph paper or noise has thousands, and nothing useful could be read from it.
MAX_MARKS = 500

# Against the line's tall characters (its 75th-percentile height), a mark under DOT_SIZE of it
# both ways is no character of its own (an i's or j's dot off to the side of a slanted stem, a
# flick of the pen): it joins the nearest larger mark within DOT_REACH of that height. But a
# solid one (ink over at least STOP_FILL of its box) lower than that mark's middle is a full stop
# or a speck beside it, not part of it: it stays apart (and is left out of the text as no
# character, ``rejection.line_marks``).
DOT_SIZE, DOT_REACH = 0.35, 0.5
STOP_FILL = 0.5
# Marks whose heights overlap by ROW_OVERLAP of the lower one's height, directly or through
# others, are one row of writing: letters on one baseline overlap by all of the smaller one's
# height, neighbours on a line sloped by 25 degrees by about half, while a g's tail reaching
# into the next row's capitals overlaps them by a little. A band lower than ROW_HEIGHT of the
# marks' median height (dots, accents, a comma or a flick between rows) joins the nearest row.
ROW_OVERLAP, ROW_HEIGHT = 1 / 3, 0.5
# A mark far wider than high (``rejection.WIDEST``) over or under two marks or more side by side
# is a line drawn under or over the writing (an underline, a table's rule), no part of a
# character: it joins none of them, where it would join them all. A T's bar drawn apart from its
# stem is over one mark, and joins it.


def components(mask: np.ndarray, min_size: int = 1) -> tuple[np.ndarray, list[dict]]:
    """8-connected components of at least ``min_size`` pixels: labels and, per component, size, box and border contact.

    ``labels`` numbers every component, the smaller ones too; only the list leaves them out
    (a noisy photo has tens of thousands of specks, each not worth a Python object).
    """
    cv2 = framing.opencv()

    # Block-based labelling (BBDT) gives the same labels and statistics as OpenCV's default
    # (Spaghetti), whose statistics cost several times the labelling on one thread. Statistics
    # cost three times the labelling again: a mask of one part (most characters) is its own.
    binary = np.ascontiguousarray(mask, dtype=bool).view(np.uint8)
    n, labels = cv2.connectedComponentsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_BBDT)
    if n == 2:
        stats = np.array([[0, 0, 0, 0, 0], [*cv2.boundingRect(binary), cv2.countNonZero(binary)]], np.int32)
    elif n > 2:
        n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(binary, 8, cv2.CV_32S, cv2.CCL_BBDT)
    n -= 1  # label 0 is the background
    if n == 0:
        return labels, []
    h, w = mask.shape
    x0, y0, x1, y1 = stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]
    if ((x0[1:] == 0) | (y0[1:] == 0) | (x1[1:] == w) | (y1[1:] == h)).any():  # a part touches the border
        contact = np.max([
            np.bincount(labels[0], minlength=n + 1) / w, np.bincount(labels[-1], minlength=n + 1) / w,
            np.bincount(labels[:, 0], minlength=n + 1) / h, np.bincount(labels[:, -1], minlength=n + 1) / h,
        ], axis=0)
    else:
        contact = np.zeros(n + 1)
    comps = []
    for i in np.flatnonzero(stats[:, cv2.CC_STAT_AREA] >= min_size):
        if i == 0:
            continue
        x, y, bw, bh, size = stats[i].tolist()
        comps.append({
            "label": int(i), "size": size, "box": [x, y, x + bw, y + bh],
            "border": bool(contact[i] > 0), "contact": float(contact[i]),
        })
    return labels, comps


def without(ink: np.ndarray, mask: np.ndarray, cleared: np.ndarray):
    """``(ink, mask, labels, comps)`` with the pixels of ``cleared`` taken out (printed lines,
    boxes): no ink there, and the marks labelled again as :func:`components` does them."""
    rest = mask & ~cleared
    labels, comps = components(rest, min_size=3)
    return np.where(cleared, np.float32(0), ink), rest, labels, comps


def union(boxes) -> list[int]:
    """The box [x0, y0, x1, y1] around all of ``boxes``."""
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _drop_edges(comps: list[dict], shape: tuple[int, int]) -> list[dict]:
    """Without paper edges, table and shadows: parts that run along a border or cover a quarter of the image."""
    area = shape[0] * shape[1]
    keep = [c for c in comps if not (c["border"] and (c["contact"] >= 0.25 or c["size"] > 0.25 * area))]
    return keep or comps


def _too_many(label: str, what: str, n: int):
    from handwritten.errors import TooManyMarks

    return TooManyMarks(f"{label}: too many separate marks for {what}: {n} (at most {MAX_MARKS})")


def select_character(labels: np.ndarray, comps: list[dict], label: str = "image") -> np.ndarray:
    """The mask of the one character: the largest part and the parts near it; specks and edges dropped.

    A part joins when its gap to the character's box is at most 0.35 of the box's longer side,
    and each part that joins widens the box and so the reach: the character is the smallest set
    of parts closed under that rule, whatever order they are looked at in.

    Raises:
        HandwrittenError: more than ``MAX_MARKS`` parts that could belong to it; ``NoInk`` (one
            of them) when there is no ink.
    """
    from handwritten.errors import NoInk

    pool = _drop_edges([c for c in comps if c["size"] >= 3], labels.shape)
    if not pool:
        raise NoInk(f"{label}: no ink found (a blank page, or too little contrast)")
    main = max(pool, key=lambda c: c["size"])
    rest = [c for c in pool if c is not main and c["size"] >= 0.015 * main["size"]]
    if len(rest) + 1 > MAX_MARKS:
        raise _too_many(label, "one character", len(rest) + 1)
    boxes = np.array([c["box"] for c in rest], np.int64).reshape(-1, 4)
    box, chosen = list(main["box"]), np.zeros(len(rest), bool)
    while True:  # parts near the character (an i's dot, a broken stroke) join it
        reach = 0.35 * max(box[2] - box[0], box[3] - box[1])
        dx = np.maximum(np.maximum(boxes[:, 0] - box[2], box[0] - boxes[:, 2]), 0)
        dy = np.maximum(np.maximum(boxes[:, 1] - box[3], box[1] - boxes[:, 3]), 0)
        near = ~chosen & (np.hypot(dx, dy) <= reach)
        if not near.any():
            break
        chosen |= near
        box = union([box, *boxes[near].tolist()])
    if not chosen.any():  # one part, as most characters are: a comparison, not a look-up per pixel
        return labels == main["label"]
    member = np.zeros(int(labels.max()) + 1, bool)
    member[[main["label"]] + [c["label"] for c, k in zip(rest, chosen) if k]] = True
    return member[labels]


def _same_character(a: list[int], b: list[int]) -> bool:
    """Whether two boxes overlap horizontally by at least half the narrower one's width."""
    return min(a[2], b[2]) - max(a[0], b[0]) >= 0.5 * min(a[2] - a[0], b[2] - b[0])


def group_overlapping(boxes: list[list[int]]) -> list[list[int]]:
    """Indices of ``boxes`` (sorted by x0) grouped into characters, left to right by x0.

    The same groups as merging the first pair of groups, in x0 order, whose union boxes overlap
    by half the narrower width, and starting over, until no pair does; in time about
    proportional to the number of boxes on a line, not to its cube. Groups stay sorted by x0,
    so a group can only overlap the later ones that start before it ends, and after a merge
    only the earlier groups reaching past the grown group's start can have become its partners.
    """
    groups = [[k] for k in range(len(boxes))]
    spans = [list(b) for b in boxes]  # each group's union box
    reach: list[int] = []  # reach[k]: the furthest right any of groups 0..k ends; kept for k < i
    i = 0
    while i < len(groups):
        j = i + 1
        while j < len(groups) and spans[j][0] < spans[i][2] and not _same_character(spans[i], spans[j]):
            j += 1
        if j == len(groups) or spans[j][0] >= spans[i][2]:  # no partner for group i
            reach.append(max(reach[-1], spans[i][2]) if reach else spans[i][2])
            i += 1
            continue
        groups[i] += groups.pop(j)
        spans[i] = union([spans[i], spans.pop(j)])
        first = bisect.bisect_right(reach, spans[i][0])  # the first earlier group that reaches into group i
        back = next((k for k in range(first, i) if _same_character(spans[k], spans[i])), None)
        if back is not None:  # merged first when starting over: group i joins it on the next step
            i = back
            del reach[back:]
    return groups


def _attach_dots(groups: list[list[dict]], boxes: list[list[int]]) -> list[list[dict]]:
    """``groups`` with each dot-sized one merged into the nearest larger group within reach."""
    b = np.array(boxes, np.float64).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    tall = float(np.percentile(h, 75)) if len(b) else 0.0
    dot = (w < DOT_SIZE * tall) & (h < DOT_SIZE * tall)
    if dot.all() or not dot.any():
        return groups
    large = np.flatnonzero(~dot)
    solid = np.array([sum(c["size"] for c in g) for g in groups]) >= STOP_FILL * np.maximum(w * h, 1)
    into = {}
    for k in np.flatnonzero(dot):
        dx = np.maximum(np.maximum(b[large, 0] - b[k, 2], b[k, 0] - b[large, 2]), 0)
        dy = np.maximum(np.maximum(b[large, 1] - b[k, 3], b[k, 1] - b[large, 3]), 0)
        distance = np.hypot(dx, dy)
        j = int(large[distance.argmin()])
        low = b[k, 1] + b[k, 3] > b[j, 1] + b[j, 3]  # its middle below the mark's
        if distance.min() <= DOT_REACH * tall and not (solid[k] and low):
            into[int(k)] = j
    merged = [list(g) for g in groups]
    for k, j in into.items():
        merged[j] += groups[k]
    return [g for k, g in enumerate(merged) if k not in into]


def text_rows(boxes: list[list[int]]) -> list[list[int]]:
    """Indices of ``boxes`` by row of writing, top to bottom, each row in the given order.

    Marks whose vertical extents overlap by ``ROW_OVERLAP`` of the lower one's height, directly
    or through a chain of others, are one row: a sloped line is one as long as neighbours
    overlap that much, and two lines of writing are two unless marks of one reach well into the
    other. A band too low to be writing (``ROW_HEIGHT``) joins the row whose marks' middle is
    nearest to it.
    """
    from scipy.sparse.csgraph import connected_components

    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    height = b[:, 3] - b[:, 1]
    # Every pair at once: a line has at most MAX_MARKS parts.
    overlap = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    linked = overlap >= ROW_OVERLAP * np.maximum(np.minimum(height[:, None], height[None, :]), 1)
    typical = float(np.median(height)) if len(b) else 0.0
    small = height < ROW_HEIGHT * typical  # a dot inside a g's tail's height links no rows
    linked[small, :] = linked[:, small] = False
    _, band_of = connected_components(linked, directed=False)
    bands = [[b[m, 1].min(), b[m, 3].max(), list(np.flatnonzero(m))]
             for m in (band_of == k for k in np.unique(band_of))]
    bands.sort(key=lambda band: (band[0] + band[1]) / 2)  # top to bottom
    rows = [band for band in bands if band[1] - band[0] >= ROW_HEIGHT * typical]
    if len(rows) <= 1:
        return [list(range(len(b)))]
    # Measured from the middle of a row's marks: a row's extent can reach into the next one's.
    middles = [float(np.median((b[r[2], 1] + b[r[2], 3]) / 2)) for r in rows]
    for band in bands:
        if band[1] - band[0] < ROW_HEIGHT * typical:
            nearest = int(np.argmin([abs((band[0] + band[1]) / 2 - m) for m in middles]))
            rows[nearest][2].extend(band[2])
    return [sorted(row[2]) for row in rows]


def line_characters(labels: np.ndarray, comps: list[dict], label: str = "image") -> tuple[np.ndarray, list[dict]]:
    """The characters of each row of writing: parts grouped where they overlap horizontally; specks
    and edges dropped.

    Returns:
        ``(groups, characters)``: ``groups`` numbers each pixel with its character, 1 for the
        first, 0 outside all of them; per character, row by row (see :func:`text_rows`) and left
        to right, ``box`` [x0, y0, x1, y1], ``row`` (0 for the top one) and ``space_before`` (a
        gap much wider than the row's typical gap comes before it).

    Raises:
        HandwrittenError: more than ``MAX_MARKS`` parts; ``NoInk`` (one of them) when there is no ink.
    """
    from handwritten.errors import NoInk

    comps = _drop_edges([c for c in comps if c["size"] >= 3], labels.shape)
    if not comps:
        raise NoInk(f"{label}: no ink found (a blank page, or too little contrast)")
    typical = float(np.median([c["size"] for c in comps]))
    comps = sorted((c for c in comps if c["size"] >= 0.03 * typical), key=lambda c: c["box"][0])
    if len(comps) > MAX_MARKS:
        raise _too_many(label, "a line", len(comps))

    number = np.zeros(int(labels.max()) + 1, np.int32)
    characters: list[dict] = []
    for row, members in enumerate(text_rows([c["box"] for c in comps])):
        for group, character in zip(*_row_characters([comps[k] for k in members])):
            characters.append(dict(character, row=row))
            number[[c["label"] for c in group]] = len(characters)
    return number[labels], characters


def _spanning(boxes: list[list[int]]) -> np.ndarray:
    """Per box, whether it is a line drawn under or over the writing: far wider than high and
    over or under two others or more that stand apart, each by half its width at least."""
    from handwritten.rejection import WIDEST

    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    width, height = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    spanning = np.zeros(len(b), bool)
    for k in np.flatnonzero(width > WIDEST * np.maximum(height, 1)):
        under = np.minimum(b[:, 2], b[k, 2]) - np.maximum(b[:, 0], b[k, 0]) >= 0.5 * width
        under[k] = False
        ends = b[under][np.argsort(b[under, 0])]
        apart = np.sum(ends[1:, 0] >= np.maximum.accumulate(ends[:-1, 2])) if len(ends) else -1
        spanning[k] = apart >= 1  # two or more marks, one beginning after all before it end
    return spanning


def _row_characters(comps: list[dict]) -> tuple[list[list[dict]], list[dict]]:
    """One row's parts (sorted by x0) grouped into characters, left to right: each one's parts,
    and its ``box`` and ``space_before``; a line under or over the writing comes last, alone."""
    spanning = _spanning([c["box"] for c in comps])
    parts = [c for c, s in zip(comps, spanning) if not s]
    groups = [[parts[k] for k in g] for g in group_overlapping([c["box"] for c in parts])]
    groups = _attach_dots(groups, [union([c["box"] for c in g]) for g in groups]) if groups else []
    boxes = [union([c["box"] for c in g]) for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (boxes[i][0] + boxes[i][2]) / 2)
    groups, boxes = [groups[i] for i in order], [boxes[i] for i in order]
    gaps = [boxes[i + 1][0] - boxes[i][2] for i in range(len(boxes) - 1)]
    height = float(np.median([b[3] - b[1] for b in boxes])) if boxes else 0.0
    typical_gap = float(np.median(np.clip(gaps, 0, None))) if gaps else 0.0
    wide = max(2.5 * typical_gap, typical_gap + 0.5 * height)
    characters = [{"box": b, "space_before": bool(i > 0 and gaps[i - 1] > wide)} for i, b in enumerate(boxes)]
    lines = [c for c, s in zip(comps, spanning) if s]
    return groups + [[c] for c in lines], characters + [{"box": c["box"], "space_before": False} for c in lines]


def segment_line(source, name: str | None = None, max_pixels: int | None = None) -> tuple[np.ndarray, list[dict]]:
    """Find the characters of a line written left to right.

    Connected components are grouped into characters when they overlap horizontally by at least
    half the narrower one's width (an i's or j's dot above its stem, a stroke broken in two), and
    a dot-sized mark joins the nearest character within reach (a dot off to the side of a slanted
    stem); specks and paper edges are dropped. A space goes before a character whose gap from the
    previous one is much wider than the typical gap.

    Returns:
        ``(ink, characters)``: the normalised ink image and, row by row and left to right, per
        character a dict with ``mask`` (bool, the size of ``ink``), ``box`` [x0, y0, x1, y1] in
        the input image's pixels, ``row`` (see :func:`text_rows`) and ``space_before`` (bool).

    Raises:
        HandwrittenError: naming the image, when it cannot be read, holds no ink, or holds more
            than ``MAX_MARKS`` separate marks.
    """
    from handwritten import images

    ink, groups, characters = images.find_line(source, name, max_pixels or images.MAX_PIXELS)
    return ink, [{"mask": groups == k, **c} for k, c in enumerate(characters, start=1)]
