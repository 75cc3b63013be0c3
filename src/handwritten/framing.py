"""How training images are framed in 28x28, measured, and a person's character framed the same way.

Data sets frame their characters differently. EMNIST scales the ink's bounding box to fill
24 px and centres the box in 28x28 (2 px padding, Cohen et al. 2017); MNIST fits the ink in a
20x20 box and moves its centre of mass to the centre of 28x28; Fashion-MNIST fills all 28 px.
:func:`measure_framing` measures this from the training images when a model is trained (it is
stored as ``meta["framing"]``), and :func:`frame` draws a person's character to match: box
size, reference point, stroke width and edge softness.
"""

from __future__ import annotations

import functools

import numpy as np

SIZE = 28
# When measuring framing, the ink's box reaches out to pixels brighter than BOX_SHARE of the
# brightest pixel (data sets frame the whole soft-edged character, so a low share); stroke width
# is measured at half height, where a blurred stroke's width is defined.
BOX_SHARE = 0.1
STROKE_SHARE = 0.5
# A gaussian blur of sigma px makes an edge about this many px wide between 10% and 90% of the peak.
EDGE_PER_SIGMA = 2.56
# The framing of a model whose file names only a kind (legacy files: EMNIST's). Box and centre
# are the papers'; stroke and edge are those of images made by their recipes (the offline sample
# follows EMNIST's).
DEFAULT_FRAMINGS = {
    "bbox": {"kind": "bbox", "box": 24.0, "pad": 2.0, "size": SIZE, "center": [13.5, 13.5], "stroke": 2.5,
             "stroke_range": [1.5, 4.0], "edge": 1.6},
    "com": {"kind": "com", "box": 20.0, "pad": 4.0, "size": SIZE, "center": [13.5, 13.5], "stroke": 2.0,
            "stroke_range": [1.2, 3.2], "edge": 1.2},
}


def _measure(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per image: ink bounding box, its centre, centre of mass and stroke width, vectorised."""
    x = x.astype(np.float32)
    peak = x.reshape(len(x), -1).max(axis=1)
    x = x[peak > 0]
    peak = peak[peak > 0]
    ink = x > (BOX_SHARE * peak)[:, None, None]
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    n = x.shape[1]
    r0, r1 = rows.argmax(axis=1), n - 1 - rows[:, ::-1].argmax(axis=1)
    c0, c1 = cols.argmax(axis=1), n - 1 - cols[:, ::-1].argmax(axis=1)
    idx = np.arange(n, dtype=np.float32)
    mass = x.sum(axis=(1, 2))
    com_y = (x.sum(axis=2) * idx).sum(axis=1) / mass
    com_x = (x.sum(axis=1) * idx).sum(axis=1) / mass
    # Stroke width = 2 * area / perimeter, the perimeter counted as ink/background pixel edges:
    # exact for long strokes of any width, including 1 px.
    core = x > (STROKE_SHARE * peak)[:, None, None]
    edges = _outline(core)
    return {
        "edge": _edge(x),
        "box": np.maximum(r1 - r0 + 1, c1 - c0 + 1).astype(np.float32),
        "box_y": (r0 + r1) / 2.0,
        "box_x": (c0 + c1) / 2.0,
        "com_y": com_y,
        "com_x": com_x,
        "stroke": 2.0 * core.sum(axis=(1, 2)) / np.maximum(edges, 1),
        "peak": peak,
    }


def _edge(x: np.ndarray) -> np.ndarray:
    """Per image, how soft the edges are: pixels between 10% and 90% of the peak per px of stroke outline."""
    x = np.asarray(x, dtype=np.float32)
    peak = x.reshape(len(x), -1).max(axis=1)[:, None, None]
    band = ((x > 0.1 * peak) & (x < 0.9 * peak)).sum(axis=(1, 2))
    return band / np.maximum(_outline(x > 0.5 * peak), 1)


def _edge_one(x: np.ndarray) -> float:
    """:func:`_edge` of one float32 image ``(H, W)``."""
    peak = x.max()
    band = np.count_nonzero((x > 0.1 * peak) & (x < 0.9 * peak))
    return band / max(int(_outline(x > 0.5 * peak)), 1)


def _outline(mask: np.ndarray) -> np.ndarray:
    """The perimeter of each mask in ``(..., H, W)``: ink/background pixel edges, the image's border included."""
    if mask.ndim == 2:  # one mask: counted without the per-axis sums, several times faster at this size
        count = np.count_nonzero
        inner = count(mask[1:, :] != mask[:-1, :]) + count(mask[:, 1:] != mask[:, :-1])
        return inner + count(mask[0]) + count(mask[-1]) + count(mask[:, 0]) + count(mask[:, -1])
    inner = (mask[..., 1:, :] != mask[..., :-1, :]).sum(axis=(-2, -1)) + (mask[..., :, 1:] != mask[..., :, :-1]).sum(axis=(-2, -1))
    border = mask[..., 0, :].sum(axis=-1) + mask[..., -1, :].sum(axis=-1) + mask[..., :, 0].sum(axis=-1) + mask[..., :, -1].sum(axis=-1)
    return inner + border


def _spread(y: np.ndarray, x: np.ndarray) -> float:
    """Mean distance of points from their mean: how firmly a reference point is held in place."""
    return float(np.mean(np.hypot(y - y.mean(), x - x.mean())))


def measure_framing(x_uint8: np.ndarray, limit: int = 5000) -> dict:
    """Measure how a data set frames its images (bright ink on dark, upright, ``(N, 28, 28)``).

    Whichever reference point stays put across images decides the kind: the ink's bounding-box
    centre (``"bbox"``: EMNIST, Fashion-MNIST) or its centre of mass (``"com"``: MNIST).

    Args:
        x_uint8: training images, uint8 ``(N, H, W)``; a few thousand are plenty.
        limit: at most this many images are measured (evenly spaced through ``x_uint8``).

    Returns:
        A JSON-able dict: ``kind`` (``"bbox"`` or ``"com"``), ``box`` (the ink's longest side
        in px, median), ``pad`` (``(size - box) / 2``), ``size``, ``center`` ([row, col] where
        the reference point sits, mean), ``stroke`` (median stroke width in px) and
        ``stroke_range`` (its 5th and 95th percentiles), ``edge`` (how
        soft the edges are: px between 10% and 90% of the peak per px of outline, median),
        ``ink`` (median brightest pixel), the two spreads that decided the kind, and ``images``.
    """
    x = np.asarray(x_uint8)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"measure_framing needs images of shape (N, H, W) with N > 0, got shape {x.shape}")
    if len(x) > limit:
        x = x[np.linspace(0, len(x) - 1, limit).astype(int)]
    if not x.any():
        raise ValueError("measure_framing: every image is blank")
    m = _measure(np.ascontiguousarray(x))
    size = int(x.shape[1])
    bbox_spread = _spread(m["box_y"], m["box_x"])
    com_spread = _spread(m["com_y"], m["com_x"])
    kind = "bbox" if bbox_spread <= com_spread else "com"
    ref_y, ref_x = (m["box_y"], m["box_x"]) if kind == "bbox" else (m["com_y"], m["com_x"])
    box = float(np.median(m["box"]))
    return {
        "kind": kind,
        "box": round(box, 2),
        "pad": round((size - box) / 2, 2),
        "size": size,
        "center": [round(float(ref_y.mean()), 2), round(float(ref_x.mean()), 2)],
        "stroke": round(float(np.median(m["stroke"])), 2),
        "stroke_range": [round(float(np.percentile(m["stroke"], 5)), 2), round(float(np.percentile(m["stroke"], 95)), 2)],
        "edge": round(float(np.median(m["edge"])), 2),
        "ink": round(float(np.median(m["peak"])), 1),
        "bbox_spread": round(bbox_spread, 3),
        "com_spread": round(com_spread, 3),
        "images": int(len(m["box"])),
    }


def framing_from_meta(meta: dict | None) -> dict:
    """The framing dict of a model's metadata; a kind given as a bare string gets its defaults.

    Raises:
        ValueError: the framing is neither a known kind nor a dict of numbers that :func:`frame`
            can use; the message names the entry at fault.
    """
    framing = (meta or {}).get("framing") or "bbox"
    if isinstance(framing, str):
        if framing not in DEFAULT_FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(DEFAULT_FRAMINGS)}")
        return dict(DEFAULT_FRAMINGS[framing])
    if not isinstance(framing, dict):
        raise ValueError(f"a framing is a kind ({', '.join(DEFAULT_FRAMINGS)}) or an object, not {type(framing).__name__}")
    kind = framing.get("kind", "bbox")
    if kind not in DEFAULT_FRAMINGS:
        raise ValueError(f"unknown framing kind {kind!r}; expected one of {', '.join(DEFAULT_FRAMINGS)}")
    out = dict(DEFAULT_FRAMINGS[kind])
    out.update(framing)
    _check_framing(out)
    return out


def _number(value, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _check_framing(framing: dict) -> None:
    """Refuse entries :func:`frame` would fail on or turn into a wrong picture."""
    if framing["size"] != SIZE:
        raise ValueError(f"'size' must be {SIZE}, the models' input size, got {framing['size']!r}")
    limits = {"box": (0.5, SIZE), "pad": (-SIZE, SIZE), "stroke": (0, SIZE), "edge": (0, SIZE),
              "ink": (0, 255)}
    for key, (low, high) in limits.items():
        if key in framing and not _number(framing[key], low, high):
            raise ValueError(f"{key!r} must be a number from {low} to {high}, got {framing[key]!r}")
    for key, (low, high) in {"center": (0, SIZE), "stroke_range": (0, SIZE)}.items():
        value = framing.get(key)
        if key == "stroke_range" and value is None:
            continue
        if not (isinstance(value, list) and len(value) == 2 and all(_number(v, low, high) for v in value)):
            raise ValueError(f"{key!r} must be two numbers from {low} to {high}, got {value!r}")


# ---------------------------------------------------------------- framing a character

SCALE_UP = 4  # the character is drawn at 4x the final size first, where strokes are adjusted and blurred


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of a mask that is not empty, end exclusive."""
    x, y, w, h = opencv().boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    if w == 0:
        raise ValueError("the bounding box of an empty mask")
    return y, x, y + h, x + w


def _stroke(mask: np.ndarray) -> float:
    """Stroke width in px: 2 * area / perimeter, as in :func:`_measure`."""
    return 2.0 * np.count_nonzero(mask) / max(int(_outline(mask)), 1)


def _cut(a: np.ndarray, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    """``a[y0:y1, x0:x1]`` with zeros where the window reaches past the image's edges."""
    out = np.zeros((y1 - y0, x1 - x0), a.dtype)
    sy0, sx0, sy1, sx1 = max(y0, 0), max(x0, 0), min(y1, a.shape[0]), min(x1, a.shape[1])
    out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = a[sy0:sy1, sx0:sx1]
    return out


def frame(ink: np.ndarray, mask: np.ndarray, framing: dict) -> np.ndarray:
    """Frame the character under ``mask`` (ink bright on dark) like the training data: uint8 28x28 upright.

    The ink is cut out with room for its soft edges; a stroke much thinner than the training
    data's (a fine pen on a big photo, which would shrink to a faint hairline) is thickened to
    it; the character is drawn at ``SCALE_UP`` times the final size, scaled so its box is
    ``framing["box"]`` and placed so its bounding-box centre (``"bbox"``) or centre of mass
    (``"com"``) lands on ``framing["center"]``; last, edges sharper than the training data's
    ``framing["edge"]`` are blurred to it (EMNIST's own recipe blurs every character with sigma 1
    at 128 px; blurring an image that is soft already would make it softer than the data).
    """
    cv2 = opencv()

    box = float(framing["box"])
    y0, x0, y1, x1 = _bbox(mask)
    length = max(y1 - y0, x1 - x0)
    # A stroke thinner than the training data's usual range (a fine pen on a big photo, which
    # would shrink to a faint hairline) is widened to the typical width. Heavy strokes are left
    # alone: thinning them made re-drawn test images less like their originals, not more.
    stroke = float(framing.get("stroke", 2.5))
    low = (framing.get("stroke_range") or (0.75 * stroke,))[0]
    width = _stroke(mask[y0:y1, x0:x1])
    grow = 0.0
    if width < low / box * length:
        target = stroke / box
        grow = (target * length - width) / (2 * (1 - target))  # then (width + 2 grow) / (length + 2 grow) == target
    soft = max(2, round(length / 30))
    reach = soft + int(np.ceil(grow))
    y0, x0, y1, x1 = y0 - reach, x0 - reach, y1 + reach, x1 + reach
    own = _cut(mask, y0, x0, y1, x1)
    if grow > 0:
        # The pen's own grey profile carries nothing at this scale: draw the mask, widened.
        cut = _widen(own, grow).astype(np.float32)
    else:
        # The character's pixels, their soft edges and what they enclose (faint detail inside a
        # shape); anything else in the window, such as a neighbour's stroke or a speck, is left out.
        region = _fill_holes(cv2.dilate(own.view(np.uint8), diamond(soft)))
        cut = _cut(ink, y0, x0, y1, x1) * region

    # Draw at SCALE_UP x the final size: the character's longest side becomes `inter` px.
    inter = SCALE_UP * box
    k = inter / (length + 2 * grow)
    resample = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    h, w = max(1, round((y1 - y0) * k)), max(1, round((x1 - x0) * k))
    up = cv2.resize(cut.astype(np.float32, copy=False), (w, h), interpolation=resample)
    up = cv2.copyMakeBorder(up, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=0)
    out = _place(up, framing)
    # Soften edges to the training data's softness (EMNIST's blur and bicubic resampling leave
    # edges about 1.5 px wide; a sharp photo would otherwise give edges under 1 px), and only as
    # far as they need: a photo that is soft already (out of focus, or drawn small and enlarged)
    # keeps its edges instead of being blurred once more.
    wanted, have = float(framing.get("edge", 0.0)), _edge_one(out)
    if have < 0.9 * wanted:
        up = blur(up, SCALE_UP * np.sqrt(wanted**2 - have**2) / EDGE_PER_SIGMA)
        out = _place(up, framing)
    out = out * (float(framing.get("ink", 255.0)) / max(float(out.max()), 1e-6))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _widen(mask: np.ndarray, reach: float) -> np.ndarray:
    """The pixels within ``reach`` px (Euclidean) of ``mask``: a dilation by a disk when it is small, else a distance map."""
    cv2 = opencv()

    if reach < 6:  # the same pixels, at a fraction of the time of an exact distance map
        # Squared distances between pixels are whole numbers: the disk depends on reach squared's whole part.
        return cv2.dilate(mask.view(np.uint8), disk(int(reach), int(reach * reach))) > 0
    return cv2.distanceTransform((~mask).view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= reach


@functools.cache
def disk(radius: int, squared: int) -> np.ndarray:
    """The pixels within ``radius`` steps either way whose squared distance from the centre is at most
    ``squared``, as a uint8 kernel; made once per pair."""
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (x * x + y * y <= squared).astype(np.uint8)


@functools.cache
def opencv():
    """OpenCV, one thread per call: callers prepare images in threads of their own (the server's
    image workers), and OpenCV's pool on top of them would only contend for the same cores."""
    import cv2 as module

    module.setNumThreads(1)
    return module


@functools.cache
def diamond(radius: int) -> np.ndarray:
    """The pixels within ``radius`` steps (4-neighbourhood) of the centre, made once per radius:
    one dilation by it is ``radius`` dilations by the 3x3 cross, in one pass over the image."""
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (np.abs(y) + np.abs(x) <= radius).astype(np.uint8)


def blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """A gaussian blur reaching 4 sigma, edges mirrored, as ``scipy.ndimage.gaussian_filter`` does."""
    cv2 = opencv()

    size = 2 * int(4 * sigma + 0.5) + 1
    return cv2.GaussianBlur(np.ascontiguousarray(a, dtype=np.float32), (size, size), sigma, borderType=cv2.BORDER_REFLECT)


def _fill_holes(region: np.ndarray) -> np.ndarray:
    """A uint8 mask with what it encloses filled: the background not reached from outside (4-connected) is a hole."""
    cv2 = opencv()

    outside = cv2.copyMakeBorder(region, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    cv2.floodFill(outside, None, (0, 0), 2)
    return outside[1:-1, 1:-1] != 2


def _place(up: np.ndarray, framing: dict) -> np.ndarray:
    """Scale a drawing (at about SCALE_UP x) so its box is framing["box"] px and put its reference point on framing["center"]."""
    from PIL import Image

    box, size = float(framing["box"]), int(framing.get("size", SIZE))
    # Measured the way measure_framing measures the training images.
    r0, c0, r1, c1 = _bbox(up > BOX_SHARE * float(up.max()))
    scale = box / max(r1 - r0, c1 - c0)
    if framing.get("kind") == "com":
        total = float(up.sum())
        ry = float(up.sum(axis=1) @ np.arange(up.shape[0])) / total + 0.5
        rx = float(up.sum(axis=0) @ np.arange(up.shape[1])) / total + 0.5
    else:
        ry, rx = (r0 + r1) / 2, (c0 + c1) / 2
    cy, cx = framing.get("center", [13.5, 13.5])

    def place(scale: float) -> np.ndarray:
        span = size / scale
        top, left = ry - (cy + 0.5) / scale, rx - (cx + 0.5) / scale
        # Only the window drawn from is cut out, with zeros where it reaches past the drawing.
        y0, x0 = int(np.floor(top)), int(np.floor(left))
        window = _cut(up, y0, x0, int(np.ceil(top + span)) + 1, int(np.ceil(left + span)) + 1)
        window = np.ascontiguousarray(window, dtype=np.float32)
        image = Image.frombuffer("F", (window.shape[1], window.shape[0]), window, "raw", "F", 0, 1)  # no copy
        image = image.resize((size, size), Image.Resampling.BOX, box=(left - x0, top - y0, left - x0 + span, top - y0 + span))
        return np.frombuffer(image.tobytes(), np.float32).reshape(size, size)  # cheaper than np.asarray(image)

    out = place(scale)
    # Soft edges can add a pixel to the box measured at 28 px; measure again and rescale once.
    y0, x0, y1, x1 = _bbox(out > BOX_SHARE * out.max())
    measured = max(y1 - y0, x1 - x0)
    if abs(measured - box) >= 1:
        out = place(scale * box / measured)
    return out


def model_input(x_uint8: np.ndarray, orientation: str = "upright") -> np.ndarray:
    """Upright uint8 ``(N, 28, 28)`` images as the model takes them: float32 ``(N, 28, 28, 1)`` in [0, 1].

    The one place where the orientation is applied: a model trained on EMNIST's files as stored
    (``orientation == "transposed"``, the original script's models) gets transposed images.
    """
    x = np.asarray(x_uint8)
    if orientation == "transposed":
        x = x.transpose(0, 2, 1)
    return (x.astype(np.float32) / 255.0)[..., None]
