"""People's images in, the 28x28 frames a model was trained on out.

An image in one of the common formats (a path, bytes, a file object, a PIL image or an array)
is read safely (pixel limit checked before decoding, documents refused unopened), turned to
grey with alpha composited, its polarity detected, the paper's brightness flattened and
contrast stretched. The ink is found as connected components (``handwritten.marks``); specks,
paper edges and shadows are dropped; the character is framed as the model's training data was
(``handwritten.framing``). A line of characters is split into characters, left to right, with
spaces where a gap is much wider than the typical gap.
"""

from __future__ import annotations

import numpy as np

from handwritten import boxes, framing, marks, rules
from handwritten.marks import segment_line  # noqa: F401  (a mask per character; lives with the marks)

# Re-exported: callers that turn images into model input find the framing functions here too.
from handwritten.framing import frame, framing_from_meta, measure_framing, model_input  # noqa: F401
from handwritten.framing import blur

# Opening an image safely lives in ``opening.py``; load_grey and MAX_PIXELS stay importable from here.
from handwritten.opening import MAX_PIXELS, _describe, load_grey  # noqa: F401

# An image of one character keeps at least this many px on its short side: larger ones are
# halved. One character is framed from at most about twice the detail the frame keeps: frame()
# draws it at 96 px and softens its edges to the training data's, which leaves about 64 px of
# detail, and a character covering half of a 256 px image still spans 64 px after halving.
# Every step after that one costs a quarter as much.
ONE_CHARACTER_SIDE = 128


# ---------------------------------------------------------------- finding the ink

# Paper that deviates from its median grey by less than half a level everywhere away from the
# ink is taken as even, and is not flattened (a canvas, a clean scan).
EVEN_PAPER = 0.5 / 255


def _median(x: np.ndarray) -> float:
    """The median of values in [0, 1], to 1/510: of the values rounded to 256 levels (the upper
    one of the middle two), found by a partial sort of those bytes."""
    cv2 = framing.opencv()

    levels = cv2.convertScaleAbs(np.asarray(x, dtype=np.float32), alpha=255.0).ravel()
    middle = levels.size // 2
    return int(np.partition(levels, middle)[middle]) / 255.0


def _levels(x: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """How many of ``x * scale + shift``, rounded and kept within 0..255, fall on each of the 256 levels."""
    cv2 = framing.opencv()

    levels = cv2.convertScaleAbs(np.asarray(x, dtype=np.float32), alpha=scale, beta=shift)
    return np.bincount(levels.ravel(), minlength=256)  # the same counts as cv2.calcHist, cheaper on one thread


def normalise(g: np.ndarray, label: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Ink bright on dark, background flattened, contrast stretched; returns ``(ink, mask)``.

    Polarity comes from the image, not an assumption: the background is the majority (median)
    grey, and the ink is the side (darker or lighter) holding more of what stands out from it.

    Raises:
        NoInk: the image has no ink (a blank page).
    """
    from handwritten.errors import NoInk

    g = np.ascontiguousarray(g, dtype=np.float32)
    # A little blur decides what is ink: JPEG noise and single specks fall below the threshold.
    # The ink itself is taken unblurred; frame() blurs it at the training data's scale.
    sigma = max(0.7, min(g.shape) / 400)
    blurred = blur(g, sigma)
    background = _median(blurred)
    diff = np.subtract(blurred, background, out=blurred)
    # How far the image reaches below and above the background, beyond 0.1 of the range:
    # np.minimum(diff + 0.1, 0) is -np.maximum(-diff - 0.1, 0), to the bit, in one temporary.
    below = np.add(diff, 0.1, dtype=np.float32)
    above = np.subtract(diff, 0.1, dtype=np.float32)
    sign = -1.0 if -np.minimum(below, 0, out=below).sum() > np.maximum(above, 0, out=above).sum() else 1.0
    # Uneven lighting in photos: subtract the paper's local brightness as well.
    # How far each pixel lies on the ink's side: max(-diff, 0) is -min(diff, 0), to the bit.
    dev = np.maximum(diff, 0, out=above) if sign > 0 else np.negative(np.minimum(diff, 0, out=below), out=below)
    top = max(float(dev.max()), 1e-6)
    inky = dev > _otsu(dev, top) * top
    near_ink = framing.opencv().dilate(inky.view(np.uint8), framing.diamond(2))
    paper = None if _even_paper(g, background, near_ink) else _background_map(dev, near_ink)
    if paper is None:  # paper of one grey (a canvas, a clean scan): nothing to flatten
        level, mask = top, inky
    else:
        flat = np.maximum(dev - paper, 0)
        level = float(flat.max())
        mask = flat > _otsu(flat, max(level, 1e-6)) * level
    if level < 0.1:
        raise NoInk(f"{label}: no ink found (a blank page, or too little contrast)")
    ink = np.subtract(g, background, out=diff) if sign > 0 else np.subtract(background, g, out=diff)
    if paper is not None:
        ink -= paper
    ink *= 1.0 / level
    return np.minimum(np.maximum(ink, 0, out=ink), 1, out=ink), mask  # np.clip, without its wrapper's cost


def _even_paper(g: np.ndarray, background: float, near_ink: np.ndarray) -> bool:
    """Whether every pixel away from the ink (``near_ink`` == 0) is within ``EVEN_PAPER`` of ``background``."""
    cv2 = framing.opencv()

    away = 1 - near_ink
    return bool(away.any()) and cv2.minMaxLoc(np.abs(g - background), mask=away)[1] < EVEN_PAPER


def _background_map(g: np.ndarray, inky: np.ndarray) -> np.ndarray:
    """The paper's brightness everywhere, from its own pixels only, smoothed on a 64 px grid.

    Pixels that look like ink (``inky``, uint8: above Otsu's threshold, widened) are left out
    and the rest is averaged with a wide gaussian (a normalised convolution), so thick strokes
    are never taken for background and hollowed out, while a shadow across a photo still is.
    """
    cv2 = framing.opencv()

    h, w = g.shape
    if min(h, w) < 32 or inky.all():
        return np.full_like(g, float(np.median(g[inky == 0])) if not inky.all() else 0.0)
    k = 64 / max(h, w)
    shape = (max(4, round(w * k)), max(4, round(h * k)))
    small = cv2.resize(g, shape, interpolation=cv2.INTER_AREA)
    paper = cv2.resize((1 - inky).astype(np.float32), shape, interpolation=cv2.INTER_AREA) > 0.95
    weight = blur(paper.astype(np.float32), 8)
    level = blur(small * paper, 8) / np.maximum(weight, 1e-6)
    if (weight <= 1e-3).any():
        level = np.where(weight > 1e-3, level, float(np.median(g[inky == 0])))
    return cv2.resize(level.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


_OTSU_EDGES = np.arange(128) / 128


def _otsu(x: np.ndarray, top: float = 1.0) -> float:
    """Otsu's threshold of values in [0, ``top``] on 128 levels, as a share of ``top`` kept within [0.25, 0.6]."""
    hist = _levels(x, 256.0 / top, -0.5).reshape(128, 2).sum(axis=1)  # level k: values from k/128 to (k+1)/128
    edges = _OTSU_EDGES
    p = hist / max(x.size, 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * edges)
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return min(max(float(edges[int(np.argmax(between))]), 0.25), 0.6)


def preprocess(source, framing: dict | None = None, name: str | None = None, max_pixels: int = MAX_PIXELS,
               details: bool = False):
    """A person's image of one character as the model's training data looks: uint8 28x28, upright.

    Args:
        source: a path, bytes, a file object, a PIL image or a numpy array.
        framing: a model's ``meta["framing"]`` (see :func:`framing_from_meta`); EMNIST's by default.
        name: how to name the image in error messages (default: its path, else "image").
        max_pixels: larger images are refused before they are decoded.
        details: also return what was found (``ink``, ``mask``, ``labels``, ``components``, and
            ``chosen``: the character's mask), for ``handwritten.rejection``. They are of the
            image as it was worked on: halved when large (``ONE_CHARACTER_SIDE``), so in pixels of that.

    Raises:
        HandwrittenError: naming the image, when it cannot be read; ``NoInk`` when it holds no ink.
    """
    label = _describe(source, name)
    framing = framing_from_meta({"framing": framing})
    ink, mask = normalise(load_grey(source, label, max_pixels, ONE_CHARACTER_SIDE)[0], label)
    labels, comps = marks.components(mask, min_size=3)
    ink, mask, labels, comps = rules.remove(ink, mask, labels, comps)
    ink, mask, labels, comps = boxes.remove(ink, mask, labels, comps)
    chosen = marks.select_character(labels, comps, label)
    framed = frame(ink, chosen, framing)
    if details:
        return framed, {"ink": ink, "mask": mask, "labels": labels, "components": comps, "chosen": chosen}
    return framed


# ---------------------------------------------------------------- a line of characters


def find_line(source, name: str | None = None, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """The characters of a line written left to right, without a mask each (see :func:`marks.segment_line`).

    Returns:
        ``(ink, groups, characters)``: the normalised ink image; ``groups``, the same size,
        numbering each pixel with its character (1 for the leftmost, 0 for none), so the mask of
        character ``k`` is ``groups == k + 1`` and is made only when it is needed; per character,
        row by row, ``box`` [x0, y0, x1, y1] in the input image's pixels, ``row`` and ``space_before``.

    Raises:
        HandwrittenError: naming the image, when it cannot be read, holds no ink, or holds more
            separate marks than a line has (``marks.MAX_MARKS``).
    """
    label = _describe(source, name)
    grey, factor = load_grey(source, label, max_pixels)
    ink, mask = normalise(grey, label)
    labels, comps = marks.components(mask, min_size=3)
    ink, mask, labels, comps = rules.remove(ink, mask, labels, comps)
    ink, mask, labels, comps = boxes.remove(ink, mask, labels, comps)
    groups, characters = marks.line_characters(labels, comps, label)
    for c in characters:
        x0, y0, x1, y1 = c["box"]  # in the input's pixels
        c["box"] = [int(round(x0 * factor[0])), int(round(y0 * factor[1])), int(round(x1 * factor[0])),
                    int(round(y1 * factor[1]))]
    return ink, groups, characters
