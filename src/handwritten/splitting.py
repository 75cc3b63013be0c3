"""Characters written touching, split apart where the model reads the pieces better.

Quick handwriting lets neighbours touch: a 0 and a 1 whose strokes meet, a 3 and a 4 joined at
their bars. Their ink is one mark, so :func:`marks.line_characters` takes them for one character
(H and V touching read w, 3, 4 and 5 read m). A mark far wider than high, and than its row's
characters, is a candidate. It is cut at columns spread across it (where characters touch, the
cut between them is often not the thinnest column: two upright strokes side by side are thick
there), every piece that could be one character is read, and the split into two or three
pieces read most surely is found by dynamic programming. The mark is split when its pieces are
read with a higher probability together (the product of theirs) than the mark whole: the rule
of :mod:`handwritten.joining` the other way round, so pieces split here are not joined again
there. A wide M or w read surely whole stays one.
"""

from __future__ import annotations

import numpy as np

# A mark this much wider than high may be characters touching: a digit or capital is about
# 0.5-0.9 of its height wide, a wide S, U or 2 of real handwriting up to about 1.3, two
# touching 1.5 and more. In a row of at least MIN_ROW characters it must also be WIDER times
# their median width.
WIDE = 1.4
WIDER = 1.5
MIN_ROW = 3
# Cuts are tried every STEP of the mark's height (at most CUTS of them, spread evenly); each
# piece is MIN_PIECE to WIDE times the height wide, and a mark is split into at most PIECES.
STEP = 0.12
CUTS = 16
MIN_PIECE = 0.08
PIECES = 3
# At most this many marks of a line are tried, the widest first: the work stays bounded on a
# photo of noise or texture, whose hundreds of marks are no characters.
MAX_TRIED = 32


def wide(boxes: list, rows: np.ndarray, why: list) -> np.ndarray:
    """Which marks (``boxes``: each one's rows and columns; ``rows``: its row of writing) are wide
    enough to be characters touching; marks with a reason in ``why`` are no characters and never are."""
    width = np.array([b[1].stop - b[1].start for b in boxes], float)
    height = np.array([b[0].stop - b[0].start for b in boxes], float)
    character = np.array([w is None for w in why], bool)
    out = character & (width > WIDE * height)
    for row in np.unique(rows[character]):
        mine = character & (rows == row)
        if mine.sum() >= MIN_ROW:
            out[mine] &= width[mine] > WIDER * np.median(width[mine])
    return out


def cuts(height: int, width: int) -> np.ndarray:
    """The columns to try cutting a mark of ``height`` x ``width`` px at, inside it: every ``STEP``
    of its height, at most ``CUTS`` of them spread evenly. Where characters touch, the cut between
    them is often not the thinnest column (two upright strokes side by side are thick there):
    the model judges the pieces of every cut."""
    n = min(CUTS, int(width / max(STEP * height, 1.0)) - 1)
    if n < 1:
        return np.zeros(0, int)
    return np.unique(np.round(np.linspace(0, width, n + 2)[1:-1]).astype(int))


def segments(height: int, bounds: np.ndarray) -> list[tuple[int, int]]:
    """The pieces ``(i, j)`` between ``bounds[i]`` and ``bounds[j]`` (0, the cuts, the width) that
    could be one character: ``MIN_PIECE`` to ``WIDE`` times ``height`` wide."""
    return [(i, j) for i in range(len(bounds)) for j in range(i + 1, len(bounds))
            if MIN_PIECE * height <= bounds[j] - bounds[i] <= WIDE * height]


def best_split(n_bounds: int, pieces: list[tuple[int, int]], log_p: np.ndarray) -> tuple[float, list[int]]:
    """The split of a mark into 2 to ``PIECES`` pieces read most surely: ``(sum of log probabilities,
    the inner bounds cut at)``; ``(-inf, [])`` when none fits. ``log_p[s]`` is piece ``pieces[s]``'s."""
    best = np.full((n_bounds, PIECES + 1), -np.inf)  # best[j, n]: bound j reached in n pieces
    back = np.zeros((n_bounds, PIECES + 1), int)
    best[0, 0] = 0.0
    for s in np.argsort([j for _, j in pieces], kind="stable"):  # by end bound: every start is settled first
        i, j = pieces[s]
        for n in range(1, PIECES + 1):
            if best[i, n - 1] + log_p[s] > best[j, n]:
                best[j, n], back[j, n] = best[i, n - 1] + log_p[s], i
    n = 2 + int(np.argmax(best[-1, 2:]))
    if not np.isfinite(best[-1, n]):
        return -np.inf, []
    at, inner = n_bounds - 1, []
    for m in range(n, 0, -1):
        at = back[at, m]
        inner.append(int(at))
    return float(best[-1, n]), sorted(inner)[1:]


def split(groups: np.ndarray, parts: list[dict], k: int, box: tuple[slice, slice], columns: list[int],
          ) -> tuple[np.ndarray, list[dict]]:
    """``groups`` and ``parts`` with character ``k`` (its ``box`` in ``groups``) cut at ``columns`` of the box.

    ``groups`` numbers each pixel with its character from 1; the pieces become characters ``k``
    to ``k + len(columns)``, and those after them move up. Each piece's box is the part's box
    (in the input image's pixels) cut where its ink ends, mapped from ``groups``' pixels; the
    pieces after the first have no space before them.
    """
    more = len(columns)
    groups = np.where(groups > k + 1, groups + more, groups)
    window = groups[box]
    mine = window == k + 1
    piece = np.searchsorted(np.asarray(columns), np.arange(window.shape[1]), side="right")
    window[mine] = (k + 1 + np.broadcast_to(piece, window.shape))[mine]
    rows, cols = box
    x0, y0, x1, y1 = parts[k]["box"]
    sx = (x1 - x0) / max(cols.stop - cols.start, 1)
    sy = (y1 - y0) / max(rows.stop - rows.start, 1)
    new = []
    for number in range(k + 1, k + 2 + more):
        ys, xs = np.nonzero(window == number)
        new.append(dict(parts[k], space_before=parts[k]["space_before"] if number == k + 1 else False,
                        box=[int(round(x0 + xs.min() * sx)), int(round(y0 + ys.min() * sy)),
                             int(round(x0 + (xs.max() + 1) * sx)), int(round(y0 + (ys.max() + 1) * sy))]))
    return groups, parts[:k] + new + parts[k + 1:]


def _pieces(ink: np.ndarray, own: np.ndarray, box: tuple[slice, slice], spans: list[tuple[int, int]],
            frame) -> list[np.ndarray]:
    """The pieces of the mark ``own`` (its mask in ``box``) between each of ``spans``' columns,
    framed by ``frame(ink, mask)``, from a window around the mark, not the whole image: a quarter
    of the mark's size on each side, more than the framing reaches for soft edges and thickening
    (about a tenth)."""
    rows, cols = box
    margin = max(rows.stop - rows.start, cols.stop - cols.start) // 4 + 4
    y0, x0 = max(rows.start - margin, 0), max(cols.start - margin, 0)
    y1, x1 = min(rows.stop + margin, ink.shape[0]), min(cols.stop + margin, ink.shape[1])
    window = ink[y0:y1, x0:x1]
    mask = np.zeros(window.shape, bool)
    mask[rows.start - y0:rows.stop - y0, cols.start - x0:cols.stop - x0] = own
    across = np.arange(window.shape[1])[None, :] - (cols.start - x0)
    return [frame(window, mask & (across >= a) & (across < b)) for a, b in spans]


def split_touching(ink, groups, parts, framed, probs, why, read, frame):
    """A line's marks of characters written touching, split where the model reads the pieces better.

    Args:
        ink, groups, parts: as ``images.find_line`` gives them; framed, probs: each mark framed
            and read; why: each mark's reason for being no character (None for a character):
            only characters are split.
        read: framed images (N, 28, 28) to their class probabilities (N, classes).
        frame: ``(ink, mask)`` to the mark framed as the model's input.

    Returns:
        ``(groups, parts, framed, probs, why)`` with each split mark's pieces in its place.
    """
    from scipy import ndimage

    boxes = ndimage.find_objects(groups, max_label=len(parts))
    candidate = wide(boxes, np.array([p.get("row", 0) for p in parts]), why)
    tried = np.flatnonzero(candidate)
    widths = np.array([boxes[k][1].stop - boxes[k][1].start for k in tried])
    tried = np.sort(tried[np.argsort(-widths, kind="stable")[:MAX_TRIED]])
    for k in reversed(tried.tolist()):  # from the right: a split moves those after it
        box = boxes[k]
        own = groups[box] == k + 1
        height, width = own.shape
        bounds = np.concatenate([[0], cuts(height, width), [width]])
        # A mark may have columns without ink (a character's parts joined across a gap): no
        # piece is all gap.
        inked = np.concatenate([[0], np.cumsum(own.any(axis=0))])
        spans = [(i, j) for i, j in segments(height, bounds) if inked[bounds[j]] > inked[bounds[i]]]
        if not spans:
            continue
        framed_spans = _pieces(ink, own, box, [(bounds[i], bounds[j]) for i, j in spans], frame)
        read_spans = read(np.stack(framed_spans))
        score, inner = best_split(len(bounds), spans, np.log(np.maximum(read_spans.max(axis=1), 1e-12)))
        if not inner or score <= np.log(max(float(probs[k].max()), 1e-12)):
            continue
        groups, parts = split(groups, parts, k, box, [int(bounds[i]) for i in inner])
        chosen = [spans.index((i, j)) for i, j in zip([0] + inner, inner + [len(bounds) - 1])]
        framed = np.concatenate([framed[:k], np.stack([framed_spans[s] for s in chosen]), framed[k + 1:]])
        probs = np.concatenate([probs[:k], read_spans[chosen], probs[k + 1:]])
        why = why[:k] + [None] * len(chosen) + why[k + 1:]
    return groups, parts, framed, probs, why
