"""People's images in, the 28x28 frames a model was trained on out.

Any image Pillow opens (a path, bytes, a file object, a PIL image or an array) is read safely
(pixel limit checked before decoding), turned to grey with alpha composited, its polarity
detected, the paper's brightness flattened and contrast stretched. The ink is found as
connected components; specks, paper edges and shadows are dropped; the character is framed
as the model's training data was (``handwritten.framing``). A line of characters is split
into characters, left to right, with spaces where a gap is much wider than the typical gap.
"""

from __future__ import annotations

import numpy as np

# Re-exported: callers that turn images into model input find the framing functions here too.
from handwritten.framing import frame, framing_from_meta, measure_framing, model_input  # noqa: F401

# ---------------------------------------------------------------- opening an image safely

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
        top = float(arr.max(initial=0))
        if source.dtype.kind in "ui" or top > 1.0:  # integer pixels: 8 or 16 bit
            arr = arr / (65535.0 if top > 255 else 255.0)
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

    opened = None  # closed here if opened here
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
                im = opened = Image.open(source)
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
    except PermissionError:
        raise HandwrittenError(f"{label}: cannot read the file (permission denied)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise HandwrittenError(f"{label}: truncated or damaged image ({exc})") from None
    finally:
        if opened is not None:
            opened.close()


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


# ---------------------------------------------------------------- finding the ink


def normalise(g: np.ndarray, label: str = "image") -> tuple[np.ndarray, np.ndarray]:
    """Ink bright on dark, background flattened, contrast stretched; returns ``(ink, mask)``.

    Polarity comes from the image, not an assumption: the background is the majority (median)
    grey, and the ink is the side (darker or lighter) holding more of what stands out from it.

    Raises:
        HandwrittenError: the image has no ink (a blank page).
    """
    from scipy import ndimage

    from handwritten.errors import NoInk

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
        raise NoInk(f"{label}: no ink found (a blank page, or too little contrast)")
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
    from handwritten.errors import NoInk

    pool = _drop_edges([c for c in comps if c["size"] >= 3], labels.shape)
    if not pool:
        raise NoInk(f"{label}: no ink found (a blank page, or too little contrast)")
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


def preprocess(source, framing: dict | None = None, name: str | None = None, max_pixels: int = MAX_PIXELS,
               details: bool = False):
    """A person's image of one character as the model's training data looks: uint8 28x28, upright.

    Args:
        source: a path, bytes, a file object, a PIL image or a numpy array.
        framing: a model's ``meta["framing"]`` (see :func:`framing_from_meta`); EMNIST's by default.
        name: how to name the image in error messages (default: its path, else "image").
        max_pixels: larger images are refused before they are decoded.
        details: also return what was found (``ink``, ``mask``, ``labels``, ``components``, and
            ``chosen``: the character's mask), for ``handwritten.rejection``.

    Raises:
        HandwrittenError: naming the image, when it cannot be read; ``NoInk`` when it holds no ink.
    """
    label = _describe(source, name)
    framing = framing_from_meta({"framing": framing})
    ink, mask = normalise(load_grey(source, label, max_pixels)[0], label)
    labels, comps = components(mask)
    chosen = select_character(labels, comps, label)
    framed = frame(ink, chosen, framing)
    if details:
        return framed, {"ink": ink, "mask": mask, "labels": labels, "components": comps, "chosen": chosen}
    return framed


# ---------------------------------------------------------------- a line of characters


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
    from handwritten.errors import NoInk

    label = _describe(source, name)
    grey, factor = load_grey(source, label, max_pixels)
    ink, mask = normalise(grey, label)
    labels, comps = components(mask)
    comps = _drop_edges([c for c in comps if c["size"] >= 3], mask.shape)
    if not comps:
        raise NoInk(f"{label}: no ink found (a blank page, or too little contrast)")
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
