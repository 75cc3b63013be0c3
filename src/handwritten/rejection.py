"""Telling a character from what is not one: a blank page, a speck, a scribble, a shape, a texture.

A classifier answers every input with some class, so the decision is made before and after
it, from measurements of the image's ink that do not depend on the model:

- no ink at all: a blank page or canvas (``images.NoInk``);
- the ink that was chosen as the character is a filled blob rather than strokes: a speck, a
  blot or a filled shape (stroke width compared with the character's size, and how uniformly
  full the ink is);
- its strokes are far longer than any character's, or enclose many loops: a scribble, a
  crossed-out mark or hatching (stroke length and holes compared with the character's size);
- it is much wider than a character and falls into separate columns: several characters; far
  wider still in one piece: a joined-up word, a dash or a stroke across (alone, or as a mark of
  a line);
- as much ink lies elsewhere in the image, in many pieces or one large one: noise, a
  texture, a photo of things, or several characters apart;

and, after the model, a cue near its limit together with a calibrated probability of the best
class below one half. Each cue is a
ratio (to the character's own size or the image's), so it holds for a 280x280 canvas and a
phone photo alike. The thresholds were set on aggregate figures only: the generated
non-characters of ``handwritten.negatives`` and the share of real characters rejected
(``benchmarks/bench_rejection.py``).
"""

from __future__ import annotations

import numpy as np

# Stroke width over the character's longest side. Handwriting is at most about a fifth of the
# size, a heavy marker on a small letter a quarter (so is a bar, I or l, three times as long as
# wide), a bold typeface drawn with a heavy pen up to about 0.37; a filled disk or square is
# half, a speck as much. A small, blurred character whose loops have closed up can be as thick,
# but its ink is not uniform: what was drawn filled has SOLID or more of its pixels near full
# ink, a blurred character at most about 0.8. And a mark of SPECK_PIXELS or fewer (at the
# working resolution: images of 256 px and more are halved first, ``images.ONE_CHARACTER_SIDE``) is too
# small to hold a character.
MAX_THICKNESS = 0.4
SOLID = 0.85
SPECK_PIXELS = 12
# In a line, a mark under SPECK_SHARE of its row's characters' height is a speck whatever its
# strokes: a full stop, a comma or dust (a dot belonging to an i or j is part of its character).
# So is one of SPECK_PIXELS or fewer when that is under SPECK_OF_IMAGE of the image's shorter
# side: the grain of a blank photo; a crop of small writing, whose letters may be that small,
# keeps them.
SPECK_SHARE = 0.25
SPECK_OF_IMAGE = 0.05
# Total stroke length over the longest side. An I is 1, an O about 3, M, W, B, g about 4-5.
MAX_LENGTH = 5.5
# Enclosed loops large enough to see (each at least HOLE_SHARE of the box). B and 8 have 2.
MAX_HOLES = 3
HOLE_SHARE = 0.004
# Width over height: wider than this with ink in separate columns is several characters side by
# side; wider than WIDEST in one run of columns, a joined-up word or a dash. A wide m or w is about 2.
MAX_ASPECT = 1.2
WIDEST = 2.6
# Ink outside the character, over the character's ink: in pieces of at least OTHER_SHARE of it.
MAX_OTHER_INK = 1.0
OTHER_SHARE = 0.15
MAX_PIECES = 12
# A character spanning (nearly) the whole image in this many separate pieces is a texture or a
# photo of things: a character drawn that large is one to three strokes (i, j, a broken stroke).
SPANNING = 0.9
MAX_SPANNING_PIECES = 5
# Share of the whole image that is ink: noise and textures cover much of it; a large character
# drawn with a broad pen on a small canvas covers up to about a third.
MAX_COVERAGE = 0.5
# Near a limit (this share of it, or at it for counts), a cue alone does not reject, but it does
# when the model is also unsure: its calibrated probability below DOUBT. A clean character is
# never rejected for a low probability alone, so a weak or briefly trained model is judged by
# the same cues as a good one.
NEAR = 0.75
DOUBT = 0.5

REASONS = {
    "blank": "no ink found: a blank page or canvas",
    "blob": "a filled blob or speck, not pen strokes",
    "scribble": "strokes too long or too tangled for a character: a scribble or a crossed-out mark",
    "several": "several characters side by side; read it as a line",
    "wide": "much wider than one character: joined-up writing, a dash or a line across the image",
    "clutter": "ink all over the image or in many pieces: noise, a texture or several marks",
    "unlike": "odd strokes, and like no character the model knows",
}


def _outline(mask: np.ndarray) -> int:
    """Ink/background pixel edges, the border included: twice the strokes' length, up to 4/pi."""
    from handwritten.framing import _outline as outline

    return int(outline(mask))


def _holes(crop: np.ndarray) -> int:
    """Background regions enclosed by ink, of at least ``HOLE_SHARE`` of the box's area."""
    from handwritten.framing import opencv

    cv2 = opencv()
    padded = cv2.copyMakeBorder((~crop).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    n, background = cv2.connectedComponents(padded, connectivity=4)
    if n <= 2:  # label 0 is the ink; one region of background is the outside
        return 0
    sizes = np.bincount(background.ravel(), minlength=n)  # cheaper than OpenCV's statistics
    outside = background[0, 0]
    least = max(4.0, HOLE_SHARE * crop.size)
    return int(sum(1 for k in range(1, n) if k != outside and sizes[k] >= least))


def _columns(crop: np.ndarray, height: int) -> int:
    """Runs of ink columns separated by empty gaps of at least a twentieth of the height."""
    filled = np.flatnonzero(crop.any(axis=0))
    if not len(filled):
        return 0
    gaps = np.diff(filled) - 1  # empty columns between one inked column and the next
    return 1 + int((gaps >= max(1, height // 20)).sum())


def _percentile(x: np.ndarray, q: float) -> float:
    """``np.percentile(x, q)`` (linear interpolation) of a 1-d array, by partial sorting: a fraction of the time."""
    at = q / 100 * (len(x) - 1)
    low, high = int(np.floor(at)), int(np.ceil(at))
    part = np.partition(x, [low, high])
    return float(part[low] + (part[high] - part[low]) * (at - low))


def measure(found: dict) -> dict:
    """The cues of one image from what ``images.preprocess(..., details=True)`` found."""
    from handwritten import marks
    from handwritten.framing import _bbox

    mask, chosen, labels = found["mask"], found["chosen"], found["labels"]
    y0, x0, y1, x1 = _bbox(chosen)
    crop = chosen[y0:y1, x0:x1]
    height, width = crop.shape
    side = max(height, width)
    area = np.count_nonzero(crop)
    # Paper edges, a table or a shadow along the border are left out, as when choosing the character.
    pool = [c for c in marks._drop_edges(found["components"], mask.shape) if c["size"] >= 3]
    mine = set(np.flatnonzero(np.bincount(labels[y0:y1, x0:x1][crop])).tolist())  # the character's parts
    others = [c["size"] for c in pool if c["label"] not in mine and c["size"] >= OTHER_SHARE * area]
    return {
        **stroke_cues(crop, found["ink"][y0:y1, x0:x1]),
        "aspect": width / height,
        "columns": _columns(crop, height),
        "other_ink": float(sum(others)) / area,
        "pieces": len(mine),
        "marks": len(pool),
        "coverage": float(sum(c["size"] for c in pool)) / mask.size,
        "size": side / min(mask.shape),
    }


def stroke_cues(crop: np.ndarray, ink: np.ndarray) -> dict:
    """What one mark's strokes are like: the cues of ``crop`` (its mask, cut to its box) and ``ink`` there.

    ``solid`` (share of its pixels near full ink), ``pixels`` (its longer side), ``thickness``
    (stroke width over that side), ``length`` (stroke length over it) and ``holes``.
    """
    side = max(crop.shape)
    length = np.pi / 8 * _outline(crop)  # Cauchy-Crofton: pixel edges are about twice the length
    values = ink[crop]
    return {
        "solid": float((values >= 0.8 * _percentile(values, 95)).mean()),
        "pixels": side,
        "thickness": np.count_nonzero(crop) / max(length, 1.0) / side,
        "length": length / side,
        "holes": _holes(crop),
    }


def stroke_reason(cues: dict) -> str | None:
    """``blob`` or ``scribble`` when a mark's :func:`stroke_cues` are not a character's strokes, else None."""
    if cues["thickness"] > MAX_THICKNESS and (cues["solid"] >= SOLID or cues["pixels"] <= SPECK_PIXELS):
        return "blob"
    if cues["length"] > MAX_LENGTH or cues["holes"] > MAX_HOLES:
        return "scribble"
    return None


def reason_from_cues(cues: dict) -> str | None:
    """The key of ``REASONS`` that the image's cues give, or None if they look like a character."""
    if cues["coverage"] > MAX_COVERAGE or cues["marks"] > MAX_PIECES or cues["other_ink"] > MAX_OTHER_INK:
        return "clutter"
    if cues["size"] >= SPANNING and cues["pieces"] >= MAX_SPANNING_PIECES:
        return "clutter"
    found = stroke_reason(cues)
    if found:
        return found
    if cues["aspect"] > MAX_ASPECT and cues["columns"] >= 2:
        return "several"
    if cues["aspect"] > WIDEST:  # in one piece across: a joined-up word, a dash
        return "wide"
    return None


def line_marks(ink: np.ndarray, groups: np.ndarray, rows: np.ndarray) -> list[str | None]:
    """Per character of a line, the key of ``REASONS`` when its mark is not a character, else None.

    A speck, a blot or a scribble is ``blob`` or ``scribble``, a mark far wider than high (a
    joined-up word, a dash, an underline) ``wide``; when more than ``MAX_PIECES`` marks are such
    and they outnumber the rest, the image is no writing at all (the grain of a blank
    photo, noise): every mark is ``clutter``.

    Args:
        ink: the line's ink image; groups: numbering each pixel with its character from 1 (0 for
            none), as ``images.find_line`` gives; rows: each character's row of writing.
    """
    from scipy import ndimage

    boxes = ndimage.find_objects(groups)
    heights = np.array([b[0].stop - b[0].start for b in boxes], float)
    typical = {row: float(np.median(heights[rows == row])) for row in np.unique(rows)}
    speck = min(SPECK_PIXELS, SPECK_OF_IMAGE * min(groups.shape))
    reasons = []
    for k, box in enumerate(boxes):
        side = max(b.stop - b.start for b in box)
        if side <= speck or side < SPECK_SHARE * typical[rows[k]]:
            reasons.append("blob")
        else:
            reasons.append(stroke_reason(stroke_cues(groups[box] == k + 1, ink[box])) or too_wide(box))
    left_out = sum(r is not None for r in reasons)
    if left_out > MAX_PIECES and left_out > len(reasons) - left_out:
        return ["clutter"] * len(reasons)
    return reasons


def too_wide(box: tuple[slice, slice]) -> str | None:
    """``"wide"`` when a character of a line (``box``: its rows and columns) is wider than WIDEST
    times its height, as no one character is: a word written joined-up, a dash, an underline, a
    crease or wood grain across a photo. A T's bar drawn apart from its stem, that wide alone,
    is one character with it by then (``marks.line_characters``)."""
    height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
    return "wide" if width > WIDEST * max(height, 1) else None


def borderline(cues: dict) -> bool:
    """Whether any cue is near its limit: a mark that may or may not be a character."""
    return (cues["thickness"] > NEAR * MAX_THICKNESS or cues["length"] > NEAR * MAX_LENGTH
            or cues["holes"] >= MAX_HOLES or cues["aspect"] > NEAR * WIDEST
            or cues["other_ink"] > NEAR * MAX_OTHER_INK or cues["pieces"] >= 3
            or cues["coverage"] > NEAR * MAX_COVERAGE)


def judge(cues: dict | None, confidence: float | None) -> str | None:
    """Why an image is not a character (a key of ``REASONS``), or None when it is one.

    Args:
        cues: from :func:`measure`; None when the image held no ink, ``{"too_many": True}``
            when it held more separate marks than a character has (``marks.MAX_MARKS``).
        confidence: the model's calibrated probability of its best class (None before the model).
    """
    if cues is None:
        return "blank"
    if cues.get("too_many"):
        return "clutter"
    found = reason_from_cues(cues)
    if found is None and confidence is not None and confidence < DOUBT and borderline(cues):
        return "unlike"
    return found


def examine(source, framing: dict | None, name: str, max_pixels: int) -> tuple[np.ndarray | None, dict | None]:
    """Frame an image of one character and measure its cues: ``(framed, cues)``, ``(None, None)`` for no ink.

    An image of more separate marks than a character has (noise, a sheet of dots) is refused
    before they are grouped, as ``(None, {"too_many": True})``: it is not a character either.

    Raises:
        HandwrittenError: the image cannot be read.
    """
    from handwritten import images
    from handwritten.errors import NoInk, TooManyMarks

    try:
        framed, found = images.preprocess(source, framing, name=name, max_pixels=max_pixels, details=True)
    except NoInk:
        return None, None
    except TooManyMarks:
        return None, {"too_many": True}
    return framed, measure(found)
