"""Ruled lines: the printed lines of notebook paper, taken out before the characters are found.

Written on lined paper, a row of characters sits on a line that joins them all into one mark,
and a single character gains a bar under it. A rule is told from writing by what no
character's stroke does: it is straight across nearly the whole width of the picture, runs
there mostly alone, ends cut square at its full thickness (by the picture's or the paper's
edge), and none of the marks left when it is gone reaches the picture's edge or is much taller
than the rule is long. It is found with the Hough transform (among the fainter ink as well: a thin
rule breaks into dashes at the ink threshold) and cleared column by column where it runs
alone, its own rows only; where a stroke crosses it the column is kept, so characters stay whole.
A Z's or a T's bar in a picture cropped to the character fails those tests and stays.
On squared paper each way's rules cross the other's, sometimes at their very ends: a rule's
ends are judged beside the lines that cross it, and the stubs left where two rules crossed go
with them.
"""

from __future__ import annotations

import numpy as np

from handwritten import framing, marks

SPAN = 0.9  # a rule runs across at least this share of the picture's width, first column to last
ALONE = 0.5  # and runs alone (no stroke crossing it) in at least this share of the columns: a faint
# rule that the ink threshold broke into dashes still does, a row of characters never does
VOTES = 0.3  # ink on a line, as a share of the width, to look at it closer
MAX_SLOPE = 8.0  # degrees: a photo of a page is seldom turned more
LONGER = 0.75  # a rule is at least this many times as long as the tallest mark left is high
MAX_RULES = 40  # each way: squared paper behind a line of writing shows a few dozen; more is not a page
BARE_LINED, BARE_SQUARED = 4, 3  # rules one way, or each way, that with nothing else are a blank page
TRIES = 120  # distinct lines looked at closer, the most ink first
NEAR = 6  # px: Hough lines this close (and within half a degree) are one
# The Hough accumulator holds a cell per 2 px of width plus height per angle: a picture whose
# sides add up to more (a 1 px high strip of millions) is not a page, and is left as it is.
MAX_SIDES = 20_000
FAINT = 0.35  # of the ink's full strength: a faint rule still shows at this level
END = 3  # px, or twice its thickness if more: a rule's last columns at each end are of its thickness
REACH = 0.03  # of the width: how near each edge of the picture a rule's ends come, at most
SLACK = 2  # px: a column's run this much longer than the rule's thickness is the rule alone still


def _lines(mask: np.ndarray) -> list[tuple[float, float]]:
    """Straight lines ``y = a + b x`` within ``MAX_SLOPE`` of horizontal with ``VOTES`` of the
    width on them, the most ink first, at most ``TRIES``, less those with ink near them in under
    ``ALONE`` of the columns where they cross the picture."""
    cv2 = framing.opencv()

    width = mask.shape[1]
    limit = np.deg2rad(MAX_SLOPE)
    # 2 px by an eighth of a degree: a thin sloped rule stays within one cell across a wide picture.
    found = cv2.HoughLinesWithAccumulator(np.ascontiguousarray(mask).view(np.uint8), 2, np.pi / 1440,
                                          max(1, int(VOTES * width)), min_theta=np.pi / 2 - limit,
                                          max_theta=np.pi / 2 + limit)
    if found is None:
        return []
    rho, theta, votes = found[:, 0].T.astype(np.float64)
    order = _distinct(rho, theta, np.argsort(-votes, kind="stable"))
    # x cos(theta) + y sin(theta) = rho
    a, b = rho[order] / np.sin(theta[order]), -np.cos(theta[order]) / np.sin(theta[order])
    # All at once, the ink within 2 px of each line in the columns where it is inside the picture:
    # most candidates (the bars of characters) have far too little to be a rule.
    h = mask.shape[0]
    x = np.arange(width)
    rows = np.rint(a[:, None] + b[:, None] * x).astype(np.int64)
    inside = (rows >= 0) & (rows < h)
    near = np.zeros(rows.shape, bool)
    for k in (-2, -1, 0, 1, 2):
        near |= mask[np.clip(rows + k, 0, h - 1), x]
    across = inside.sum(axis=1)
    enough = (across >= width / 2) & ((near & inside).sum(axis=1) >= ALONE * across)
    return [(float(a[i]), float(b[i])) for i in np.flatnonzero(enough)]


def _distinct(rho: np.ndarray, theta: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The first ``TRIES`` of ``order`` that are not near one before them (within ``NEAR`` px and
    half a degree): a thick rule gives the transform a cluster of lines, and squared paper behind
    a line of writing a few dozen rules, each of which must be looked at."""
    kept_rho, kept_theta, kept = np.empty(TRIES), np.empty(TRIES), []
    for i in order:
        n = len(kept)
        if n and ((np.abs(kept_rho[:n] - rho[i]) <= NEAR) & (np.abs(kept_theta[:n] - theta[i]) <= np.pi / 360)).any():
            continue
        kept_rho[n], kept_theta[n] = rho[i], theta[i]
        kept.append(i)
        if len(kept) == TRIES:
            break
    return np.asarray(kept, dtype=np.int64)


def _runs_at(mask: np.ndarray, line: tuple[float, float], reach: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column, the vertical run of ``mask`` through the line: its first row, its end row, and
    whether the line meets ink there at all (looked for up to 2 px off the line)."""
    h, w = mask.shape
    x = np.arange(w)
    raw = np.rint(line[0] + line[1] * x).astype(np.int64)
    centre = np.clip(raw, 0, h - 1)
    offsets = np.arange(-reach, reach + 1)
    rows = centre[:, None] + offsets[None, :]
    band = mask[np.clip(rows, 0, h - 1), x[:, None]] & (rows >= 0) & (rows < h)  # (w, 2 reach + 1)
    start = np.full(w, -1)
    for k in (0, -1, 1, -2, 2):  # from the ink pixel nearest the line
        start = np.where((start < 0) & band[:, reach + k], reach + k, start)
    hit = (start >= 0) & (raw >= 0) & (raw < h)  # where the line is inside the picture
    start = np.where(hit, start, reach)
    index = np.arange(2 * reach + 1)[None, :]
    # The run is bounded by the nearest gap above and below the starting pixel.
    gap = ~band
    above = np.where(gap & (index < start[:, None]), index, -1).max(axis=1) + 1
    below = np.where(gap & (index > start[:, None]), index, 2 * reach + 1).min(axis=1)
    return centre - reach + above, centre - reach + below, hit


def _rule(mask: np.ndarray, line: tuple[float, float],
          crossed: np.ndarray | None = None) -> tuple[np.ndarray, int, float] | None:
    """The pixels of the rule near ``line`` where it runs alone, its length and its thickness;
    None when ``line`` is no rule: it does not span ``SPAN`` of the picture (of the part of the
    width where the line is inside it, when it leaves through the top or the bottom edge), runs alone in under
    ``ALONE`` of that, or is not cut square at its ends. Its ends are judged outside the columns
    where a line crosses it from edge to edge of the band looked at (the other way's rule on
    squared paper, which may lie across its very end) and those of ``crossed`` (per column:
    whether a rule of the other way found before ran there and left a stub)."""
    h, w = mask.shape
    reach = max(4, min(h // 6, 60))
    slack = max(3, int(REACH * w))
    for refine in (True, False):
        middle = line[0] + line[1] * np.arange(w)
        inside = np.flatnonzero((middle >= -1) & (middle <= h))  # columns where the line is in the picture
        across = len(inside)
        top, end, hit = _runs_at(mask, line, reach)
        if across < w / 2 or hit.sum() < ALONE * across:
            return None
        length = end - top
        thickness = float(np.median(length[hit]))
        alone = hit & (length <= max(1.5 * thickness, thickness + SLACK))
        columns = np.flatnonzero(alone)
        if len(columns) < ALONE * across or columns[-1] - columns[0] < SPAN * across:
            return None
        # Printed, it runs off the picture at both ends; a stroke of a character cropped tightly
        # reaches one edge at most (an H's stem, from its bar down to the bottom edge).
        if columns[0] - inside[0] > slack or inside[-1] - columns[-1] > slack:
            return None
        centre = np.clip(np.rint(middle), 0, h - 1)
        through = (top <= np.maximum(centre - reach, 0)) & (end >= np.minimum(centre + reach + 1, h))
        through = _widened(through, END)  # with its soft edges
        judged = hit & ~through
        if crossed is not None:
            judged &= ~crossed
        if not _cut_square(line, length, judged, thickness, h):
            return None
        if refine:  # the Hough line is an eighth of a degree coarse: fit the rule's own middle
            b, a = np.polyfit(columns, (top[alone] + end[alone] - 1) / 2, 1)
            line = (a, b)
    # Only the rule's own rows go, around its middle: a stroke resting on it keeps its pixels.
    middle = line[0] + line[1] * np.arange(w)
    low = np.maximum(top, np.floor(middle - thickness / 2 - 0.5))
    high = np.minimum(end, np.ceil(middle + thickness / 2 + 0.5))
    rows = np.arange(h)[:, None]
    cleared = np.zeros_like(mask)
    cleared[:, alone] = (rows >= low[alone]) & (rows < high[alone])
    return cleared & mask, int(columns[-1] - columns[0] + 1), thickness


def _cut_square(line: tuple[float, float], length: np.ndarray, hit: np.ndarray, thickness: float, h: int) -> bool:
    """Whether the run along ``line`` keeps its thickness to its last columns at both ends.

    A rule is cut off square by the picture's or the paper's edge, at its full thickness and
    alone; a pen's stroke ends rounded, or in the character's other strokes (a Z's bars in its
    diagonal), wherever the picture is cropped. A sloped rule may leave through the top or the
    bottom edge, thinning as it goes.
    """
    met = np.flatnonzero(hit)
    last = max(END, int(2 * thickness))
    for columns in (met[:last], met[-last:]):
        runs = length[columns]
        middle = line[0] + line[1] * columns
        leaving = (middle < thickness + 1) | (middle > h - thickness - 2)
        # Within a pixel of its thickness, as a thin sloped rule's rows alternate, or 0.7 of it.
        if not ((leaving | (runs >= min(0.7 * thickness, thickness - 1))) & (runs <= 1.3 * thickness + 1)).all():
            return False
    return True


def _ink_near_an_edge(mask: np.ndarray, ink: np.ndarray) -> bool:
    """Whether ink (or fainter ink) comes within a rule's reach (``REACH``) of an edge of the picture.

    A rule runs off the picture at both ends (:func:`_rule`), through the sides or, sloped,
    through the top or the bottom: a drawing with a margin on every side holds none, and costs
    no Hough transform. Only the four strips along the edges are looked at.
    """
    height, width = mask.shape
    near = max(3, int(REACH * max(height, width))) + 1
    strips = (np.s_[:, :near], np.s_[:, -near:], np.s_[:near], np.s_[-near:])
    return any(mask[s].any() or (ink[s] > FAINT).any() for s in strips)


def _written_between(rest: np.ndarray, lengths: dict[int, int]) -> bool:
    """Whether the marks left (specks, under a tenth of the largest, aside) are writing the rules
    ran under: none touches the picture's edge, and none is more than 1/``LONGER`` of the rules'
    length across them (``lengths``: the shortest horizontal rule's under key 1, against the
    marks' heights; the shortest vertical one's under key 0, against their widths). A
    character's bar spans the picture only where it is cropped to the character, and there its
    other strokes reach the edges too."""
    _, comps = marks.components(rest, min_size=3)
    if not comps:
        return False
    least = 0.1 * max(c["size"] for c in comps)
    kept = [c for c in comps if c["size"] >= least]
    return not any(c["border"] for c in kept) and all(
        LONGER * max(c["box"][2 + axis] - c["box"][axis] for c in kept) <= length for axis, length in lengths.items())


def _find(seen: np.ndarray, crossed: np.ndarray | None = None) -> tuple[np.ndarray, int, float, int]:
    """The pixels of the horizontal rules in ``seen`` (taken out of it, in place), the shortest
    one's length, the thickest one's thickness and how many there are; no pixels when there is
    none. ``crossed``: the other way's rules found so far."""
    height, width = seen.shape
    cleared, length, thickness, found = np.zeros_like(seen), width, 0.0, 0
    if width < 16 or height < 8:
        return cleared, length, thickness, found
    # Where a rule of the other way was taken out, a stub of it is left across this way's (where
    # it did not run alone), a little thicker than the rule: a rule's end is not judged there.
    stubs = None if crossed is None or not crossed.any() else _widened(crossed.any(axis=0), END)
    # The straightest long marks first; a character's own bar may be among them (a T's, longer
    # than the rules), and is passed over.
    for line in _lines(seen):
        rule = _rule(seen, line, stubs)
        if rule is None:
            continue
        seen &= ~rule[0]
        cleared |= rule[0]
        length = min(length, rule[1])
        thickness = max(thickness, rule[2])
        found += 1
        if found == MAX_RULES:
            break
    return cleared, length, thickness, found


def _bare(rest: np.ndarray, thickness: float) -> bool:
    """Whether ``rest`` holds no mark larger than a few of the rules' thicknesses: debris, no writing."""
    _, comps = marks.components(rest, min_size=3)
    largest = max((max(c["box"][2] - c["box"][0], c["box"][3] - c["box"][1]) for c in comps), default=0)
    return largest <= 3 * thickness + 4


def _widened(columns: np.ndarray, by: int) -> np.ndarray:
    """``columns`` (booleans) with ``by`` more on each side of every true run."""
    kernel = np.ones(2 * by + 1)
    return np.convolve(columns.astype(np.float64), kernel, mode="same") > 0


def _crossings(rest: np.ndarray, horizontal: np.ndarray, vertical: np.ndarray, thickness: float) -> np.ndarray:
    """The stubs that squared paper's crossings leave in ``rest``: marks lying wholly where a
    horizontal and a vertical rule (each widened by about half the thicker rule) meet. Each way's
    rule is kept where the other crosses it, as a stroke crossing it would be; a stroke through a
    crossing reaches beyond it and stays."""
    cv2 = framing.opencv()
    reach = int(np.ceil(thickness / 2)) + 2
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    zone = (cv2.dilate(horizontal.view(np.uint8), kernel) & cv2.dilate(vertical.view(np.uint8), kernel)).astype(bool)
    labels, _ = marks.components(rest)
    count = int(labels.max())
    if not count:
        return np.zeros_like(rest)
    inside = np.bincount(labels[zone], minlength=count + 1) == np.bincount(labels.ravel(), minlength=count + 1)
    inside[0] = False
    return inside[labels]


def remove(ink: np.ndarray, mask: np.ndarray, labels: np.ndarray, comps: list[dict]):
    """``(ink, mask, labels, comps)`` without the ruled lines; the same objects when there are none.

    Horizontal rules (lined paper) are looked for first, then vertical ones (a margin, squared
    paper), in the picture turned a quarter. ``labels`` and ``comps`` are
    :func:`marks.components` of ``mask``. Rules of either direction are taken out only when
    writing is left between them, clear of the picture's edges and at most 1/``LONGER`` of
    their length across them: the bar of a Z or a T, or the stem of a 1, in a picture cropped
    to it, or a lone dash, stays.
    """
    height, width = mask.shape
    if width + height > MAX_SIDES or not _ink_near_an_edge(mask, ink):
        return ink, mask, labels, comps
    # A thin rule is fainter than the strokes after the blur that decides what is ink, and the
    # mask holds only dashes of it: it is looked for among the fainter ink as well.
    seen = mask | (ink > FAINT)
    horizontal, vertical = np.zeros_like(mask), np.zeros_like(mask)
    length_h, length_v, thickness, counts = width, height, 0.0, np.zeros(2, int)
    # Twice each way: on squared paper a rule's ends may lie under the other way's rules, which
    # hide that it is cut square until they are gone (or are judged beside them, see _rule).
    for _ in range(2):
        found_h, short_h, thick_h, count_h = _find(seen, vertical)
        # seen.T is a view: its rules leave seen too.
        found_v, short_v, thick_v, count_v = _find(seen.T, (horizontal | found_h).T)
        if not (found_h.any() or found_v.any()):
            break
        horizontal |= found_h
        vertical |= found_v.T
        length_h = min(length_h, short_h)
        length_v = min(length_v, short_v)
        thickness = max(thickness, thick_h, thick_v)
        counts += (count_h, count_v)
    # Both ways together (squared paper: each alone leaves the other's rules at the edges), else
    # either alone; each way's rules measured against the marks across them.
    ways = [(rules, {axis: length}) for rules, axis, length in ((horizontal, 1, length_h), (vertical, 0, length_v))
            if rules.any()]
    if len(ways) == 2:
        ways.insert(0, (horizontal | vertical, {**ways[0][1], **ways[1][1]}))
    cleared = next((rules for rules, lengths in ways if _written_between(mask & ~rules, lengths)), None)
    if len(ways) == 3 and cleared is ways[0][0]:  # both ways: squared paper, with stubs where they crossed
        cleared = cleared | _crossings(mask & ~cleared, horizontal, vertical, thickness)
    elif (cleared is None and (counts.min() >= BARE_SQUARED or counts.max() >= BARE_LINED)
          and len(comps) <= 2 * counts.sum()):
        # Nothing but rules (and the stubs where they crossed), each of them whole: a blank page
        # of lined or squared paper, which has no ink. No character has that many bars (an E's
        # three stay), and rows of dots are no rules (a sheet of dots stays thousands of marks).
        everything = horizontal | vertical
        if len(ways) == 3:
            everything |= _crossings(mask & ~everything, horizontal, vertical, thickness)
        if _bare(mask & ~everything, thickness):
            cleared = everything
    if cleared is None:
        return ink, mask, labels, comps
    return marks.without(ink, mask, cleared)
