"""People's images in, the 28x28 frames a model was trained on out.

Training data sets frame their characters differently. EMNIST scales the ink's bounding box to
fill 24 px and centres the box in 28x28 (2 px padding, Cohen et al. 2017); MNIST fits the ink
in a 20x20 box and moves its centre of mass to the centre of 28x28; Fashion-MNIST fills all
28 px. :func:`measure_framing` measures this from the training images when a model is
trained, and :func:`preprocess` frames a person's image the same way, so the model sees input
that looks like its own training data.
"""

from __future__ import annotations

import numpy as np

SIZE = 28
# When measuring framing, the ink's box reaches out to pixels brighter than BOX_SHARE of the
# brightest pixel (data sets frame the whole soft-edged character, so a low share); stroke width
# is measured at half height, where a blurred stroke's width is defined.
BOX_SHARE = 0.1
STROKE_SHARE = 0.5
# The framing of a model whose file names only a kind (legacy files: EMNIST's).
DEFAULT_FRAMINGS = {
    "bbox": {"kind": "bbox", "box": 24.0, "pad": 2.0, "size": SIZE, "center": [13.5, 13.5], "stroke": 2.5},
    "com": {"kind": "com", "box": 20.0, "pad": 4.0, "size": SIZE, "center": [13.5, 13.5], "stroke": 2.0},
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
    padded = np.pad(core, ((0, 0), (1, 1), (1, 1)))
    edges = (padded[:, 1:, :] != padded[:, :-1, :]).sum(axis=(1, 2)) + (padded[:, :, 1:] != padded[:, :, :-1]).sum(axis=(1, 2))
    return {
        "box": np.maximum(r1 - r0 + 1, c1 - c0 + 1).astype(np.float32),
        "box_y": (r0 + r1) / 2.0,
        "box_x": (c0 + c1) / 2.0,
        "com_y": com_y,
        "com_x": com_x,
        "stroke": 2.0 * core.sum(axis=(1, 2)) / np.maximum(edges, 1),
        "peak": peak,
    }


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
        the reference point sits, mean), ``stroke`` (median stroke width in px), ``ink`` (median
        brightest pixel), the two spreads that decided the kind, and ``images`` measured.
    """
    x = np.asarray(x_uint8)
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"measure_framing needs images of shape (N, H, W) with N > 0, got shape {x.shape}")
    if len(x) > limit:
        x = x[np.linspace(0, len(x) - 1, limit).astype(int)]
    m = _measure(np.ascontiguousarray(x))
    if len(m["box"]) == 0:
        raise ValueError("measure_framing: every image is blank")
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
        "ink": round(float(np.median(m["peak"])), 1),
        "bbox_spread": round(bbox_spread, 3),
        "com_spread": round(com_spread, 3),
        "images": int(len(m["box"])),
    }


def framing_from_meta(meta: dict | None) -> dict:
    """The framing dict of a model's metadata; a kind given as a bare string gets its defaults."""
    framing = (meta or {}).get("framing") or "bbox"
    if isinstance(framing, str):
        if framing not in DEFAULT_FRAMINGS:
            raise ValueError(f"unknown framing {framing!r}; expected one of {', '.join(DEFAULT_FRAMINGS)}")
        return dict(DEFAULT_FRAMINGS[framing])
    out = dict(DEFAULT_FRAMINGS.get(framing.get("kind", "bbox"), DEFAULT_FRAMINGS["bbox"]))
    out.update(framing)
    return out


# ----------------------------------------------------------------------------------------
# Opening an image safely
# ----------------------------------------------------------------------------------------

MAX_PIXELS = 20_000_000  # a 20 MP phone photo; more is refused before it is decoded
WORK_PIXELS = 1_500_000  # images are reduced to about this many pixels before processing


def _describe(source, name: str | None) -> str:
    """How an image is named in messages: the name given, else its path, else "image"."""
    import os

    if name is not None:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return "image"


def load_grey(source, name: str | None = None, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """Open an image as float32 grey ``(H, W)`` in [0, 1], reduced to about ``WORK_PIXELS``.

    Returns ``(grey, factor)``: ``factor`` is the input's size over the returned one (1 or more).

    ``source`` is a path, bytes, a binary file object, a PIL image or a numpy array (grey, RGB or
    RGBA; uint8 or float in [0, 1]). Transparent pixels are composited onto a background that
    contrasts with the opaque ones, so strokes on a transparent canvas survive in any colour.

    Raises:
        HandwrittenError: naming the image: missing file, not an image, truncated, 0x0, more
            than ``max_pixels`` pixels (checked from the header, before decoding).
    """
    import io
    import os
    import warnings

    from PIL import Image, ImageOps

    from handwritten.errors import HandwrittenError

    label = _describe(source, name)
    if isinstance(source, np.ndarray):
        arr = source.astype(np.float32)
        if arr.dtype != np.float32 or source.dtype == np.uint8 or arr.max(initial=0) > 1.0:
            arr = arr / 255.0
        if arr.ndim == 3 and arr.shape[2] in (3, 4):
            rgb = arr[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
            arr = _composite(rgb, arr[..., 3]) if arr.shape[2] == 4 else rgb
        if arr.ndim != 2:
            raise HandwrittenError(f"{label}: an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {source.shape}")
        if arr.size == 0:
            raise HandwrittenError(f"{label}: the image is empty (0x0 pixels)")
        if arr.size > max_pixels:
            raise HandwrittenError(f"{label}: {arr.shape[1]}x{arr.shape[0]} pixels is more than the limit of {max_pixels:,}")
        return _reduce(Image.fromarray(np.clip(arr, 0, 1).astype(np.float32), mode="F"))

    try:
        if isinstance(source, Image.Image):
            im = source
        else:
            if isinstance(source, (bytes, bytearray, memoryview)):
                if len(source) == 0:
                    raise HandwrittenError(f"{label}: empty file (0 bytes)")
                source = io.BytesIO(bytes(source))
            elif isinstance(source, (str, os.PathLike)):
                if not os.path.exists(source):
                    raise HandwrittenError(f"{label}: file not found")
                if os.path.isdir(source):
                    raise HandwrittenError(f"{label}: is a folder, not an image file")
                if os.path.getsize(source) == 0:
                    raise HandwrittenError(f"{label}: empty file (0 bytes)")
            with warnings.catch_warnings():
                # Pillow warns above its own limit and refuses at twice it; ours is lower and checked below.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(source)
        width, height = im.size
        if width == 0 or height == 0:
            raise HandwrittenError(f"{label}: the image is empty ({width}x{height} pixels)")
        if width * height > max_pixels:
            raise HandwrittenError(
                f"{label}: {width}x{height} pixels is more than the limit of {max_pixels:,} pixels (refused before decoding)"
            )
        im.seek(0)  # the first frame of an animation
        im = ImageOps.exif_transpose(im)  # phone photos are stored sideways with an EXIF rotation
        return _reduce(_to_grey(im))
    except HandwrittenError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise HandwrittenError(
            f"{label}: the image declares {declared}, more than the limit of {max_pixels:,} pixels "
            "(refused before decoding, as a possible decompression bomb)"
        ) from None
    except Image.UnidentifiedImageError:
        if _declares_no_pixels(source):
            raise HandwrittenError(f"{label}: the image is empty (0x0 pixels)") from None
        raise HandwrittenError(f"{label}: not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP ...)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = "truncated or damaged image" if "truncat" in str(exc).lower() or isinstance(exc, EOFError) else "unreadable image"
        raise HandwrittenError(f"{label}: {reason} ({exc})") from None


def _declares_no_pixels(source) -> bool:
    """Whether a PNG or GIF header Pillow refused declares a width or height of 0."""
    import struct

    try:
        if hasattr(source, "seek"):
            source.seek(0)
            head = source.read(32)
        else:
            with open(source, "rb") as f:
                head = f.read(32)
    except (OSError, TypeError):
        return False
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return 0 in struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return 0 in struct.unpack("<HH", head[6:10])
    return False


def _composite(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite onto white if what is drawn is dark, onto black if it is light."""
    drawn = alpha > 0.5
    background = 1.0 if not drawn.any() or grey[drawn].mean() < 0.5 else 0.0
    return grey * alpha + background * (1.0 - alpha)


def _to_grey(im) -> np.ndarray:
    """A PIL image of any mode as float32 grey in [0, 1], alpha composited."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(im.convert("F"), dtype=np.float32)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return arr / top if im.mode != "F" or arr.max(initial=0) > 1 else arr
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        return _composite(grey, rgba[..., 3])
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def _reduce(g) -> tuple[np.ndarray, float]:
    """Shrink to about ``WORK_PIXELS`` with area averaging (the 28x28 result needs no more)."""
    from PIL import Image

    im = g if isinstance(g, Image.Image) else Image.fromarray(np.ascontiguousarray(g, dtype=np.float32), mode="F")
    w, h = im.size
    if w * h > WORK_PIXELS:
        k = (WORK_PIXELS / (w * h)) ** 0.5
        im = im.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.float32), w / im.size[0]


# ----------------------------------------------------------------------------------------
# Finding the ink
# ----------------------------------------------------------------------------------------


def normalise(g: np.ndarray, label: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Ink bright on dark, background flattened, contrast stretched; returns ``(ink, mask)``.

    Polarity comes from the image, not an assumption: the background is the majority (median)
    grey, and the ink is the side (darker or lighter) holding more of what stands out from it.

    Raises:
        HandwrittenError: the image has no ink (a blank page).
    """
    from scipy import ndimage

    from handwritten.errors import HandwrittenError

    # A little blur decides what is ink: JPEG noise and single specks fall below the threshold.
    # The ink itself is taken unblurred; frame() blurs it at the training data's scale.
    sigma = max(0.7, min(g.shape) / 400)
    blurred = ndimage.gaussian_filter(g, sigma)
    background = float(np.median(blurred))
    sign = 1.0
    if np.clip(background - blurred - 0.1, 0, None).sum() > np.clip(blurred - background - 0.1, 0, None).sum():
        sign = -1.0
    # Uneven lighting in photos: subtract the paper's local brightness as well.
    dev = np.clip(sign * (blurred - background), 0, None)
    paper = _background_map(dev)
    flat = np.clip(dev - paper, 0, None)
    level = float(flat.max())
    if level < 0.1:
        raise HandwrittenError(f"{label}: no ink found (a blank page, or too little contrast)")
    mask = flat / level > _otsu(flat / level)
    ink = np.clip((sign * (g - background) - paper) / level, 0, 1)
    return ink, mask


def _background_map(g: np.ndarray) -> np.ndarray:
    """The paper's brightness everywhere, from its own pixels only, smoothed on a 64 px grid.

    Pixels that look like ink (above Otsu's threshold, widened) are left out and the rest is
    averaged with a wide gaussian (a normalised convolution), so thick strokes are never taken
    for background and hollowed out, while a shadow across a photo still is.
    """
    from PIL import Image
    from scipy import ndimage

    h, w = g.shape
    inky = ndimage.binary_dilation(g > _otsu(g), iterations=2)
    if min(h, w) < 32 or inky.all():
        return np.full_like(g, float(np.median(g[~inky])) if not inky.all() else 0.0)
    k = 64 / max(h, w)
    shape = (max(4, round(w * k)), max(4, round(h * k)))
    small = np.asarray(Image.fromarray(g, mode="F").resize(shape, Image.Resampling.BOX))
    paper = np.asarray(Image.fromarray((~inky).astype(np.float32), mode="F").resize(shape, Image.Resampling.BOX)) > 0.95
    weight = ndimage.gaussian_filter(paper.astype(np.float32), 8)
    level = ndimage.gaussian_filter(small * paper, 8) / np.maximum(weight, 1e-6)
    level = np.where(weight > 1e-3, level, float(np.median(g[~inky])))
    return np.asarray(Image.fromarray(level.astype(np.float32), mode="F").resize((w, h), Image.Resampling.BILINEAR))


def _otsu(x: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1], kept within [0.25, 0.6]."""
    hist, edges = np.histogram(x, bins=128, range=(0, 1))
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * edges[:-1])
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return float(np.clip(edges[int(np.argmax(between))], 0.25, 0.6))


def components(mask: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """8-connected components: labels and, per component, size, box and border contact."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return labels, []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    h, w = mask.shape
    border = {
        "top": np.bincount(labels[0], minlength=n + 1), "bottom": np.bincount(labels[-1], minlength=n + 1),
        "left": np.bincount(labels[:, 0], minlength=n + 1), "right": np.bincount(labels[:, -1], minlength=n + 1),
    }
    comps = []
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        contact = max(border["top"][i] / w, border["bottom"][i] / w, border["left"][i] / h, border["right"][i] / h)
        comps.append({
            "label": i, "size": int(sizes[i]), "box": [sl[1].start, sl[0].start, sl[1].stop, sl[0].stop],
            "border": bool(contact > 0), "contact": float(contact),
        })
    return labels, comps


def _gap(a: list[int], b: list[int]) -> float:
    """Distance between two boxes [x0, y0, x1, y1]; 0 when they overlap."""
    dx = max(a[0] - b[2], b[0] - a[2], 0)
    dy = max(a[1] - b[3], b[1] - a[3], 0)
    return float(np.hypot(dx, dy))


def _union(boxes: list[list[int]]) -> list[int]:
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _drop_edges(comps: list[dict], shape: tuple[int, int]) -> list[dict]:
    """Without paper edges, table and shadows: parts that run along a border or cover a quarter of the image."""
    area = shape[0] * shape[1]
    keep = [c for c in comps if not (c["border"] and (c["contact"] >= 0.25 or c["size"] > 0.25 * area))]
    return keep or comps


def select_character(labels: np.ndarray, comps: list[dict], label: str = "image") -> np.ndarray:
    """The mask of the one character: the largest part and the parts near it; specks and edges dropped."""
    from handwritten.errors import HandwrittenError

    pool = _drop_edges([c for c in comps if c["size"] >= 3], labels.shape)
    if not pool:
        raise HandwrittenError(f"{label}: no ink found (a blank page, or too little contrast)")
    main = max(pool, key=lambda c: c["size"])
    chosen, box = [main], main["box"]
    rest = [c for c in pool if c is not main and c["size"] >= 0.015 * main["size"]]
    grew = True
    while grew:  # parts near the character (an i's dot, a broken stroke) join it
        grew = False
        reach = 0.35 * max(box[2] - box[0], box[3] - box[1])
        for c in list(rest):
            if _gap(c["box"], box) <= reach:
                chosen.append(c)
                rest.remove(c)
                box = _union([box, c["box"]])
                grew = True
    return np.isin(labels, [c["label"] for c in chosen])


# ----------------------------------------------------------------------------------------
# Framing the ink like the training data
# ----------------------------------------------------------------------------------------

_NOFIX = False
SCALE_UP = 4  # the character is drawn at 4x the final size first, where strokes are adjusted and blurred


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of a mask, end exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _stroke(mask: np.ndarray) -> float:
    """Stroke width in px: 2 * area / perimeter, as in :func:`_measure`."""
    p = np.pad(mask, 1)
    edges = (p[1:, :] != p[:-1, :]).sum() + (p[:, 1:] != p[:, :-1]).sum()
    return 2.0 * float(mask.sum()) / max(int(edges), 1)


def frame(ink: np.ndarray, mask: np.ndarray, framing: dict) -> np.ndarray:
    """Frame the character under ``mask`` (ink bright on dark) like the training data: uint8 28x28 upright.

    The ink is cut out with a little room for its soft edges, drawn at ``SCALE_UP`` times the
    final size with the stroke thickened to the training data's stroke width when it is much
    thinner (a fine pen on a big photo would otherwise shrink to a faint hairline), blurred as
    EMNIST was (sigma 1 at 128 px), then scaled so its longest side is ``framing["box"]`` and
    placed so its bounding-box centre (``"bbox"``) or centre of mass (``"com"``) lands on
    ``framing["center"]``.
    """
    from PIL import Image
    from scipy import ndimage

    box, size = float(framing["box"]), int(framing.get("size", SIZE))
    y0, x0, y1, x1 = _bbox(mask)
    length = max(y1 - y0, x1 - x0)
    # The character's own pixels, their soft edges and what they enclose (faint detail inside a
    # shape); everything else in its box, such as a neighbour's stroke or a speck, is left out.
    # The soft edge of a blurred photo is a few percent of the character wide.
    reach = max(2, round(length / 30))
    y0, x0, y1, x1 = max(0, y0 - reach), max(0, x0 - reach), y1 + reach, x1 + reach
    region = ndimage.binary_dilation(mask[y0:y1, x0:x1], iterations=reach, border_value=0)
    cut = ink[y0:y1, x0:x1] * ndimage.binary_fill_holes(region)

    # Draw at SCALE_UP x the final size: the longest side becomes `inter` px.
    inter = round(SCALE_UP * box)
    k = inter / length
    resample = Image.Resampling.BOX if k < 1 else Image.Resampling.BILINEAR
    h, w = max(1, round((y1 - y0) * k)), max(1, round((x1 - x0) * k))
    up = np.asarray(Image.fromarray(cut.astype(np.float32), mode="F").resize((w, h), resample))
    target = float(framing.get("stroke", 2.5)) / box  # stroke width as a share of the longest side
    width = _stroke(mask[y0:y1, x0:x1]) * k
    grow = 0
    if width < 0.75 * target * inter:
        grow = int(round((target * inter - width) / (2 * (1 - target))))
    margin = grow + 4
    up = np.pad(up, margin)
    if grow > 0:
        yy, xx = np.mgrid[-grow:grow + 1, -grow:grow + 1]
        up = ndimage.grey_dilation(up, footprint=(yy**2 + xx**2) <= grow**2)
    up = ndimage.gaussian_filter(up, inter / 128)

    # Measure what will be placed the way measure_framing measures the training images.
    peak = float(up.max())
    r0, c0, r1, c1 = _bbox(up > BOX_SHARE * peak)
    scale = box / max(r1 - r0, c1 - c0)
    if framing.get("kind") == "com":
        ry, rx = ndimage.center_of_mass(up)
        ry, rx = ry + 0.5, rx + 0.5
    else:
        ry, rx = (r0 + r1) / 2, (c0 + c1) / 2
    cy, cx = framing.get("center", [13.5, 13.5])
    pad = int(np.ceil(size / scale * 1.25)) + 1
    up = Image.fromarray(np.pad(up, pad), mode="F")

    def place(scale: float) -> np.ndarray:
        span = size / scale
        top, left = ry + pad - (cy + 0.5) / scale, rx + pad - (cx + 0.5) / scale
        return np.asarray(up.resize((size, size), Image.Resampling.BOX, box=(left, top, left + span, top + span)))

    out = place(scale)
    # Soft edges can add a pixel to the box measured at 28 px; measure as measure_framing does and rescale once.
    y0, x0, y1, x1 = _bbox(out > BOX_SHARE * out.max())
    measured = max(y1 - y0, x1 - x0)
    if abs(measured - box) >= 1 and not _NOFIX:
        out = place(scale * box / measured)
    out = out * (float(framing.get("ink", 255.0)) / max(float(out.max()), 1e-6))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def preprocess(source, framing: dict | None = None, name: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A person's image of one character as the model's training data looks: uint8 28x28, upright.

    Args:
        source: a path, bytes, a file object, a PIL image or a numpy array.
        framing: a model's ``meta["framing"]`` (see :func:`framing_from_meta`); EMNIST's by default.
        name: how to name the image in error messages (default: its path, else "image").
        max_pixels: larger images are refused before they are decoded.

    Raises:
        HandwrittenError: naming the image, when it cannot be read or holds no ink.
    """
    label = _describe(source, name)
    framing = framing_from_meta({"framing": framing})
    ink, mask = normalise(load_grey(source, label, max_pixels)[0], label)
    labels, comps = components(mask)
    return frame(ink, select_character(labels, comps, label), framing)


def model_input(x_uint8: np.ndarray, orientation: str = "upright") -> np.ndarray:
    """Upright uint8 ``(N, 28, 28)`` images as the model takes them: float32 ``(N, 28, 28, 1)`` in [0, 1].

    The one place where the orientation is applied: a model trained on EMNIST's files as stored
    (``orientation == "transposed"``, the original script's models) gets transposed images.
    """
    x = np.asarray(x_uint8)
    if orientation == "transposed":
        x = x.transpose(0, 2, 1)
    return (x.astype(np.float32) / 255.0)[..., None]


# ----------------------------------------------------------------------------------------
# A line of characters
# ----------------------------------------------------------------------------------------


def segment_line(source, name: str | None = None, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, list[dict]]:
    """Find the characters of a line written left to right.

    Connected components are grouped into characters when they overlap horizontally by at least
    half the narrower one's width (an i's or j's dot above its stem, a stroke broken in two);
    specks and paper edges are dropped. A space goes before a character whose gap from the
    previous one is much wider than the typical gap.

    Returns:
        ``(ink, characters)``: the normalised ink image and, left to right, per character a dict
        with ``mask`` (bool, the size of ``ink``), ``box`` [x0, y0, x1, y1] in the input
        image's pixels, and ``space_before`` (bool).

    Raises:
        HandwrittenError: naming the image, when it cannot be read or holds no ink.
    """
    from handwritten.errors import HandwrittenError

    label = _describe(source, name)
    grey, factor = load_grey(source, label, max_pixels)
    ink, mask = normalise(grey, label)
    labels, comps = components(mask)
    comps = _drop_edges([c for c in comps if c["size"] >= 3], mask.shape)
    if not comps:
        raise HandwrittenError(f"{label}: no ink found (a blank page, or too little contrast)")
    typical = float(np.median([c["size"] for c in comps]))
    comps = [c for c in comps if c["size"] >= 0.03 * typical]

    groups = [[c] for c in sorted(comps, key=lambda c: c["box"][0])]
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                a, b = _union([c["box"] for c in groups[i]]), _union([c["box"] for c in groups[j]])
                overlap = min(a[2], b[2]) - max(a[0], b[0])
                if overlap >= 0.5 * min(a[2] - a[0], b[2] - b[0]):
                    groups[i] += groups.pop(j)
                    merged = True
                    break
            if merged:
                break

    boxes = [_union([c["box"] for c in g]) for g in groups]
    order = sorted(range(len(groups)), key=lambda i: (boxes[i][0] + boxes[i][2]) / 2)
    groups, boxes = [groups[i] for i in order], [boxes[i] for i in order]
    gaps = [boxes[i + 1][0] - boxes[i][2] for i in range(len(boxes) - 1)]
    height = float(np.median([b[3] - b[1] for b in boxes]))
    typical_gap = float(np.median(np.clip(gaps, 0, None))) if gaps else 0.0
    wide = max(2.5 * typical_gap, typical_gap + 0.5 * height)
    out = []
    for i, (g, b) in enumerate(zip(groups, boxes)):
        out.append({
            "mask": np.isin(labels, [c["label"] for c in g]),
            "box": [int(round(v * factor)) for v in b],  # in the input's pixels
            "space_before": bool(i > 0 and gaps[i - 1] > wide),
        })
    return ink, out
