"""Character boxes and printed lines: the boxes of a form, a character written in each, and the
line a form's answer is written on, taken out before the characters are found.

A form asks for a number or a name one character a box: a row of separate squares, or a comb
field (one long box divided by bars). Left in, a box and the character in it are one mark, read
D or 0, and a comb field is one long scribble. A box is told from writing by what a written
character never is: a frame of thin lines straight within a pixel, down the left and right
edges of its mark and across its top and bottom (a comb's bars straight from its top to its
bottom, each cell at least ``NARROWEST`` of its height wide), with writing inside. A box turned
by up to ``TILT`` is turned straight first, in whole pixels. Only the lines' own pixels go, and
not where a stroke meets them, so a character written across a box's line stays whole. A
rectangle with nothing written in it (a shape, a square O) stays, and so do all boxes when none
holds writing; a frame inside another is a character (an O in a box). A table's lines between
its rows of boxes go with its frame.

A printed line that the writing rests on and touches joins it into one mark as well. It is told
from a character's bar by its length: straight within a pixel, across the whole mark, low in
it, under two characters or more, or reaching past one by more than its height both ways. A
line through the middle of the writing crosses it out, and stays. (A line apart from the
writing is left out with the marks of a line: ``marks.line_characters``.)
"""

from __future__ import annotations

import numpy as np

from handwritten import framing, marks

MIN_SIDE = 32  # px: in a smaller mark a curve is as straight as a printed line, within a pixel
FULL = 0.9  # a box's sides (and a comb's bars) run straight along this share of its height
SIDE = 0.9  # its top and bottom run along this share of each cell's width
BAND = 0.15  # of the box's height: how far its top and bottom lie from the mark's own edges
NARROWEST = 0.3  # a cell is at least this wide for its height: a bar closer is a character's stem
TILT = 0.07  # a box's tilt, at most: tan(4 degrees)
STRAIGHT = 0.9  # of a line's length within a pixel of straight: a printed line, not a drawn one
THIN = 0.1  # a printed line is at most this thick for its length
DRIFT = 2  # px: a line's pixels lie this far off a straight line (a slight tilt, a printer's wobble)
WRITING = 0.2  # of a cell's height: the least height of a mark inside it that is writing
ALIKE = 0.25  # an empty box goes with those holding writing when its height is theirs within this share
LOW = 0.6  # of a mark's height: a printed line the writing rests on lies below this


def _fit(pixels: np.ndarray) -> tuple[float, float, float] | None:
    """The straight line ``y = a + b x`` through a thin, nearly horizontal line's pixels (one column's
    ink each its middle), and the line's thickness; outliers (a stroke touching it) refitted away.
    None unless ``STRAIGHT`` of the columns' middles lie within a pixel of it and it is thin
    (``THIN`` of its length)."""
    cols = np.flatnonzero(pixels.any(axis=0))
    if len(cols) < 2:
        return None
    first = pixels[:, cols].argmax(axis=0)
    last = pixels.shape[0] - 1 - pixels[::-1, cols].argmax(axis=0)
    middle, thick = (first + last) / 2, last - first + 1
    b, a = np.polyfit(cols, middle, 1)
    near = np.abs(middle - (a + b * cols)) <= DRIFT
    if near.sum() >= 2:
        b, a = np.polyfit(cols[near], middle[near], 1)
        thick = thick[near]
    thickness = float(np.median(thick))
    if (np.abs(middle - (a + b * cols)) <= 1).mean() < STRAIGHT or thickness > max(DRIFT + 2, THIN * len(cols)):
        return None  # a curve, a line of writing, or a band of ink (noise) rather than a line
    return float(a), float(b), thickness


def _band(shape: tuple[int, int], fit: tuple[float, float, float]) -> np.ndarray:
    """Where a fitted line lies: within half its thickness (and ``DRIFT``) of it."""
    a, b, thick = fit
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return np.abs(yy - (a + b * xx)) <= thick / 2 + DRIFT


def _uncrossed(rest: np.ndarray, fit: tuple[float, float, float]) -> np.ndarray:
    """The columns in which no ink of ``rest`` (the writing, without the box) meets the fitted
    line from either side: there a stroke crosses or touches it, and the line stays, so the
    stroke stays whole."""
    a, b, thick = fit
    h, w = rest.shape
    x = np.arange(w)
    met = np.zeros(w, bool)
    for off in (-(thick / 2 + DRIFT + 1), thick / 2 + DRIFT + 1):
        y = np.round(a + b * x + off).astype(int)
        inside = (y >= 0) & (y < h)
        met[inside] |= rest[y[inside], x[inside]]
    met[1:] |= met[:-1].copy()
    met[:-1] |= met[1:].copy()
    return ~met


def _runs(crop: np.ndarray, length: int, axis: int) -> np.ndarray:
    """The ink of ``crop`` in straight runs of at least ``length`` px along ``axis`` (0: down,
    1: across), allowing ``DRIFT`` px of tilt sideways."""
    cv2 = framing.opencv()
    across = (1, 2 * DRIFT + 1) if axis == 0 else (2 * DRIFT + 1, 1)
    widened = cv2.dilate(crop.view(np.uint8), np.ones(across, np.uint8))
    along = (length, 1) if axis == 0 else (1, length)
    return cv2.morphologyEx(widened, cv2.MORPH_OPEN, np.ones(along, np.uint8)).astype(bool) & crop


def _bars(crop: np.ndarray) -> tuple[list[tuple[float, tuple]], int, int] | None:
    """A box's left side, its bars (a comb's) and its right side, left to right: each one's column
    at mid-height and its line fitted (column from row, see :func:`_fit`); and the rows of the
    box's top and bottom. None when the mark has no straight side at its left and right edges."""
    cv2 = framing.opencv()
    h, w = crop.shape
    # A character written across a box's line makes the mark taller than the box, never twice.
    runs = _runs(crop, int(np.ceil(h / 2)), 0).view(np.uint8)
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    if count < 3:
        return None
    tall = stats[1:, cv2.CC_STAT_HEIGHT] >= FULL * stats[1:, cv2.CC_STAT_HEIGHT].max()
    tallest = [k + 1 for k in np.flatnonzero(tall)]
    top = int(min(stats[k, cv2.CC_STAT_TOP] for k in tallest))
    bottom = int(max(stats[k, cv2.CC_STAT_TOP] + stats[k, cv2.CC_STAT_HEIGHT] for k in tallest)) - 1
    height = bottom - top + 1
    bars, edge = [], max(DRIFT + 1, int(BAND * height))
    for k in tallest:
        # The straight runs of a bar hold only the columns it crosses from top to bottom: its
        # line is fitted through the ink beside them as well, within the box's rows.
        left = max(0, stats[k, cv2.CC_STAT_LEFT] - 2 * DRIFT)
        right = min(w, stats[k, cv2.CC_STAT_LEFT] + stats[k, cv2.CC_STAT_WIDTH] + 2 * DRIFT)
        fit = _fit(crop[top:bottom + 1, left:right].T)
        if fit is not None:
            fit = (fit[0] + left - fit[1] * top, fit[1], fit[2])
            bars.append((fit[0] + fit[1] * (top + bottom) / 2, fit))
    bars.sort(key=lambda bar: bar[0])
    if not bars or bars[0][0] > edge or bars[-1][0] < w - 1 - edge:
        return None
    kept = [bars[0]]  # a bar too near the last kept one is a stem written in the cell
    for bar in bars[1:]:
        if bar[0] - kept[-1][0] >= NARROWEST * height:
            kept.append(bar)
        elif bar[0] >= w - 1 - edge:  # the right side itself: the stem before it goes instead
            kept[-1] = bar
    if len(kept) < 2 or kept[-1][0] < w - 1 - edge:
        return None
    return kept, top, bottom


def _edged(crop: np.ndarray) -> bool:
    """Whether ink runs down the mark's left and right edges along half its height at least, and
    across its top half and its bottom half, as a box's sides do even turned by ``TILT``: a quick
    test that most characters fail."""
    h, w = crop.shape
    across, down = 2 * DRIFT + 3 + int(TILT * h), 2 * DRIFT + 3 + int(TILT * w)
    if min(crop[:, :across].any(axis=1).mean(), crop[:, -across:].any(axis=1).mean()) < 0.5:
        return False
    rows = framing.opencv().dilate(crop.view(np.uint8), np.ones((down, 1), np.uint8)).mean(axis=1)
    return min(rows[:h // 2].max(), rows[h // 2:].max()) >= SIDE


def _turn(crop: np.ndarray) -> float:
    """The tangent of the angle a box in ``crop`` is turned by (from its smallest enclosing
    rectangle); 0 beyond ``TILT``, where a form's box is not looked for."""
    cv2 = framing.opencv()
    angle = cv2.minAreaRect(np.column_stack(np.nonzero(crop)[::-1]).astype(np.float32))[2]
    turn = np.tan(np.deg2rad((angle + 45) % 90 - 45))
    return float(turn) if abs(turn) <= TILT else 0.0


def _shear(t: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Where each pixel of an ``(h, w)`` picture goes when its rows are shifted sideways by ``t``
    per row, then its columns up or down by ``-t`` per column: a turn by ``atan(t)`` undone, in
    whole pixels, so that it is undone again exactly. Returns the rows and columns, and the shape."""
    yy, xx = np.mgrid[:h, :w]
    shift = np.round(t * np.arange(h)).astype(int)
    cols = xx + (shift - shift.min())[:, None]
    lift = np.round(-t * np.arange(cols.max() + 1)).astype(int)
    rows = yy + (lift - lift.min())[cols]
    return rows, cols, (int(rows.max()) + 1, int(cols.max()) + 1)


def _frame(crop: np.ndarray) -> tuple[np.ndarray, list[int]] | None:
    """The pixels of a box's frame in ``crop`` (one mark), and its sides' and bars' columns at
    mid-height; None when the mark is no box."""
    if not _edged(crop):
        return None
    rows, cols, shape = _shear(_turn(crop), *crop.shape)
    straight = np.zeros(shape, bool)
    straight[rows, cols] = crop
    found = _straight_frame(straight)
    if found is None:
        return None
    shift = cols[crop.shape[0] // 2, 0]  # at mid-height, how far the columns moved
    return found[0][rows, cols], [int(np.clip(x - shift, 0, crop.shape[1] - 1)) for x in found[1]]


def _straight_frame(crop: np.ndarray) -> tuple[np.ndarray, list[int]] | None:
    """:func:`_frame` of a box that stands straight."""
    h, w = crop.shape
    found = _bars(crop)
    if found is None:
        return None
    bars, top, bottom = found
    xs = [int(np.clip(round(x), 0, w - 1)) for x, _ in bars]
    cell = min(b - a for a, b in zip(xs, xs[1:]))
    flat = _runs(crop, max(2, int(SIDE * cell) - 2 * DRIFT), 1)
    band = max(DRIFT + 1, int(BAND * (bottom - top + 1)))
    sides = []
    for edge in (np.s_[max(0, top - band):top + band], np.s_[bottom + 1 - band:bottom + 1 + band]):
        side = np.zeros_like(crop)
        side[edge] = flat[edge]
        fit = _fit(side)
        if fit is None or side[:, xs[0]:xs[-1] + 1].any(axis=0).mean() < SIDE:
            return None
        sides.append(fit)
    # A table's lines between its rows of boxes run straight across it, as its top and bottom do.
    inner = flat.copy()
    inner[:top + band], inner[bottom + 1 - band:] = False, False
    count, pieces, stats, _ = framing.opencv().connectedComponentsWithStats(inner.view(np.uint8), connectivity=8)
    for k in np.flatnonzero(stats[1:, 2] >= SIDE * (xs[-1] - xs[0])) + 1:  # column 2: the width
        fit = _fit(pieces == k)
        if fit is not None:
            sides.append(fit)
    # The lines' pixels, less the columns (for a bar, the rows) where writing meets them.
    upright = [_band((w, h), fit).T for _, fit in bars]
    across = [_band((h, w), fit) for fit in sides]
    rest = crop & ~np.logical_or.reduce(upright + across)
    frame = np.zeros_like(crop)
    for (_, fit), pixels in zip(bars, upright):
        frame |= pixels & _uncrossed(rest.T, fit)[:, None]
    for fit, pixels in zip(sides, across):
        frame |= pixels & _uncrossed(rest, fit)[None, :]
    return frame & crop, xs


def _holds_writing(rest: np.ndarray, xs: list[int]) -> bool:
    """Whether a mark inside the box (``rest``: the ink within its outline, the frame taken out)
    is tall enough to be writing, in any of its cells."""
    h = rest.shape[0]
    for a, b in zip(xs, xs[1:]):
        inset = max(DRIFT + 1, (b - a) // 10)  # clear of what is left of the bars beside the cell
        rows = np.flatnonzero(rest[:, a + inset:b - inset].any(axis=1))
        if len(rows) and rows[-1] - rows[0] + 1 >= WRITING * h:
            return True
    return False


def _underline(crop: np.ndarray) -> np.ndarray | None:
    """The pixels of a printed line that the writing of ``crop`` (one mark) rests on, touching it:
    straight within a pixel and thin, across ``SIDE`` of the mark's width and below ``LOW`` of
    its height (a line through the middle of words crosses them out), with two marks or more side
    by side above it once it is gone, or one that it reaches past both ways by more than the
    mark's height (no character's bar does). None when there is none."""
    cv2 = framing.opencv()
    h, w = crop.shape
    if w < 2 * MIN_SIDE or w < 1.5 * h:
        return None
    flat = _runs(crop, max(2, int(SIDE * w) - 2 * DRIFT), 1)
    if not flat[int(LOW * h):].any():
        return None
    count, pieces, stats, _ = cv2.connectedComponentsWithStats(flat.view(np.uint8), connectivity=8)
    for k in range(1, count):
        x, y, width, height = stats[k, :4]
        fit = _fit(pieces == k) if width >= SIDE * w and y + height / 2 >= LOW * h else None
        if fit is None:
            continue
        band = _band(crop.shape, fit) & crop
        line = band & _uncrossed(crop & ~band, fit)[None, :]
        n, _, parts, _ = cv2.connectedComponentsWithStats((crop & ~line).view(np.uint8), connectivity=8)
        writing = [p for p in parts[1:] if p[3] >= WRITING * h]
        spans = sorted((p[0], p[0] + p[2]) for p in writing)
        if any(b[0] >= max(a[1] for a in spans[:i + 1]) for i, b in enumerate(spans[1:])):
            return line  # two marks or more side by side: no character's bar is under both
        if spans:  # one character on a line reaching past it both ways by more than its height
            tall = max(p[1] + p[3] for p in writing) - min(p[1] for p in writing)
            if x + tall < spans[0][0] and spans[-1][1] + tall < x + width:
                return line
    return None


def _inside(a: list[int], b: list[int]) -> bool:
    return a != b and b[0] <= a[0] and b[1] <= a[1] and a[2] <= b[2] and a[3] <= b[3]


def remove(ink: np.ndarray, mask: np.ndarray, labels: np.ndarray, comps: list[dict]):
    """``(ink, mask, labels, comps)`` without the boxes of a form; the same objects when there are none.

    ``labels`` and ``comps`` are :func:`marks.components` of ``mask``. The boxes that hold
    writing are taken out, and with them the empty boxes of their height (within ``ALIKE``); a
    frame inside another one's outline is a character (a 0 written in a box without touching it).
    """
    found, underlines = [], []
    for c in comps:
        x0, y0, x1, y1 = c["box"]
        if min(x1 - x0, y1 - y0) < MIN_SIDE:
            continue
        crop = labels[y0:y1, x0:x1] == c["label"]
        frame = _frame(crop)
        if frame is not None:
            found.append((c["box"], *frame))
            continue
        line = _underline(crop)
        if line is not None:
            underlines.append((c["box"], line))
    found = [f for f in found if not any(_inside(f[0], g[0]) for g in found)]
    heights = [box[3] - box[1] for box, frame, xs in found
               if _holds_writing(mask[box[1]:box[3], box[0]:box[2]] & ~frame, xs)]
    if not heights and not underlines:
        return ink, mask, labels, comps
    cleared = np.zeros_like(mask)
    for (x0, y0, x1, y1), frame, _ in found:
        if any(abs((y1 - y0) - h) <= ALIKE * h for h in heights):
            cleared[y0:y1, x0:x1] |= frame
    for (x0, y0, x1, y1), line in underlines:
        cleared[y0:y1, x0:x1] |= line
    return marks.without(ink, mask, cleared)
