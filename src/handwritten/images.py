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

from handwritten import framing, marks
from handwritten.marks import segment_line  # noqa: F401  (a mask per character; lives with the marks)

# Re-exported: callers that turn images into model input find the framing functions here too.
from handwritten.framing import frame, framing_from_meta, measure_framing, model_input  # noqa: F401
from handwritten.framing import blur

# ---------------------------------------------------------------- opening an image safely

MAX_PIXELS = 20_000_000  # a 20 MP phone photo; more is refused before it is decoded
WORK_PIXELS = 1_500_000  # images are reduced to about this many pixels before processing
ONE_CHARACTER_SIDE = 128  # an image of one character keeps at least this many px on its short side
# The formats read, by the command line and the server alike. Pillow opens more, among them EPS
# and PostScript by running Ghostscript on the program the file holds: not for people's files.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # JPEG includes phones' multi-picture (MPO) files
DOCUMENTS = {b"%!PS": "a PostScript or EPS document", b"\xc5\xd0\xd3\xc6": "an EPS document", b"%PDF": "a PDF document"}


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
        return _reduce(np.clip(arr, 0, 1))

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
                im = opened = Image.open(source, formats=FORMATS)
        width, height = im.size
        if width == 0 or height == 0:
            raise HandwrittenError(f"{label}: the image is empty ({width}x{height} pixels)")
        if width * height > max_pixels:
            raise HandwrittenError(
                f"{label}: {width}x{height} pixels is more than the limit of {max_pixels:,} pixels (refused before decoding)"
            )
        im.seek(0)  # the first frame of an animation
        pixels = width * height
        if im is opened:
            _draft(im)
        elif "full_size" in im.info:  # decoded reduced by uploads.open_image
            pixels = im.info["full_size"][0] * im.info["full_size"][1]
        im = ImageOps.exif_transpose(im)  # phone photos are stored sideways with an EXIF rotation
        return _reduce(_to_grey(im), pixels)
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
        head = _head(source)
        check_not_document(head, label)
        if _declares_no_pixels(head):
            raise HandwrittenError(f"{label}: the image is empty (0x0 pixels)") from None
        raise HandwrittenError(f"{label}: not an image this tool reads ({', '.join(FORMATS)})") from None
    except PermissionError:
        raise HandwrittenError(f"{label}: cannot read the file (permission denied)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise HandwrittenError(f"{label}: truncated or damaged image ({exc})") from None
    finally:
        if opened is not None:
            opened.close()


def check_not_document(head: bytes, label: str) -> None:
    """Refuse a file whose first bytes ``head`` show a PostScript, EPS or PDF document, naming it."""
    from handwritten.errors import HandwrittenError

    for magic, kind in DOCUMENTS.items():
        if head.startswith(magic):
            raise HandwrittenError(
                f"{label}: {kind}, not an image; documents are not read (an EPS would run Ghostscript): "
                f"save it as one of {', '.join(FORMATS)}"
            )


def _head(source) -> bytes:
    """The first 32 bytes of a path or file object; b"" when they cannot be read."""
    try:
        if hasattr(source, "seek"):
            source.seek(0)
            return source.read(32)
        with open(source, "rb") as f:
            return f.read(32)
    except (OSError, TypeError):
        return b""


def _declares_no_pixels(head: bytes) -> bool:
    """Whether a PNG or GIF header Pillow refused declares a width or height of 0."""
    import struct

    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) >= 24:
        return 0 in struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return 0 in struct.unpack("<HH", head[6:10])
    return False


def _composite(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite float grey onto white if what is drawn is dark, onto black if it is light.

    ``alpha`` is uint8 (0-255) or float in [0, 1].
    """
    alpha = alpha.astype(np.float32) * (1 / 255.0) if alpha.dtype == np.uint8 else alpha
    drawn = alpha > 0.5
    background = 1.0 if not drawn.any() or grey[drawn].mean() < 0.5 else 0.0
    return background + (grey - background) * alpha


def _to_grey(im) -> np.ndarray:
    """A PIL image of any mode as grey: uint8, or float32 in [0, 1] when it needs more levels or alpha."""
    cv2 = framing.opencv()

    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(im.convert("F"), dtype=np.float32)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return arr / top if im.mode != "F" or arr.max(initial=0) > 1 else arr
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im if im.mode == "RGBA" else im.convert("RGBA"))
        grey, alpha = cv2.cvtColor(rgba, cv2.COLOR_RGBA2GRAY), cv2.extractChannel(rgba, 3)
        if cv2.minMaxLoc(alpha)[0] == 255:  # an alpha channel that hides nothing
            return grey
        # _composite's rule, in 8 bits: onto white if what is drawn is dark, onto black if light.
        drawn = grey[alpha > 127]
        alpha = alpha.astype(np.uint16)
        if drawn.size == 0 or drawn.mean() < 127.5:
            return (255 - ((255 - grey) * alpha + 127) // 255).astype(np.uint8)
        return ((grey * alpha + 127) // 255).astype(np.uint8)
    if im.mode == "RGB":
        return cv2.cvtColor(np.asarray(im), cv2.COLOR_RGB2GRAY)
    return np.asarray(im if im.mode == "L" else im.convert("L"))


def _draft(im) -> None:
    """Let a large JPEG decode at 1/2, 1/4 or 1/8 of its size, grey, while still above ``WORK_PIXELS``.

    The decoder scales in the frequency domain, which averages like the area reduction that
    follows anyway, at a fraction of the time of decoding every pixel.
    """
    w, h = im.size
    k = int((w * h / WORK_PIXELS) ** 0.5)
    if im.format in ("JPEG", "MPO") and k >= 2 and im.mode in ("L", "RGB", "CMYK"):
        im.draft("L", (max(1, w // k), max(1, h // k)))


def _reduce(g: np.ndarray, pixels: int | None = None) -> tuple[np.ndarray, float]:
    """Shrink to about ``WORK_PIXELS`` with area averaging (the 28x28 result needs no more); float32 in [0, 1].

    ``pixels`` is how many the image had as given (before a reduced JPEG decode); the factor
    returned is the input's size over the returned one (1 or more).
    """
    cv2 = framing.opencv()

    h, w = g.shape
    pixels = pixels or w * h
    if w * h > WORK_PIXELS:
        k = (WORK_PIXELS / (w * h)) ** 0.5
        g = cv2.resize(g, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    out = g.astype(np.float32) * (1 / 255.0) if g.dtype == np.uint8 else np.asarray(g, dtype=np.float32)
    return out, max(1.0, (pixels / out.size) ** 0.5)


# ---------------------------------------------------------------- finding the ink


def _median(x: np.ndarray) -> float:
    """The median of values in [0, 1], to 1/510: from a histogram of 256 levels, not a sort."""
    counts = _levels(x, 255.0, 0.0)
    return int(np.searchsorted(np.cumsum(counts), (x.size + 1) / 2)) / 255.0


def _levels(x: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """How many of ``x * scale + shift``, rounded and kept within 0..255, fall on each of the 256 levels."""
    cv2 = framing.opencv()

    levels = cv2.convertScaleAbs(np.asarray(x, dtype=np.float32), alpha=scale, beta=shift)
    return cv2.calcHist([levels], [0], None, [256], [0, 256]).ravel()


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
    diff = blurred - background
    sign = -1.0 if np.maximum(-diff - 0.1, 0).sum() > np.maximum(diff - 0.1, 0).sum() else 1.0
    # Uneven lighting in photos: subtract the paper's local brightness as well.
    dev = np.maximum(diff if sign > 0 else -diff, 0)
    paper = _background_map(dev)
    flat = np.maximum(dev - paper, 0)
    level = float(flat.max())
    if level < 0.1:
        raise NoInk(f"{label}: no ink found (a blank page, or too little contrast)")
    mask = flat > _otsu(flat, level) * level
    ink = g - background if sign > 0 else background - g
    ink -= paper
    ink *= 1.0 / level
    return np.clip(ink, 0, 1, out=ink), mask


def _background_map(g: np.ndarray) -> np.ndarray:
    """The paper's brightness everywhere, from its own pixels only, smoothed on a 64 px grid.

    Pixels that look like ink (above Otsu's threshold, widened) are left out and the rest is
    averaged with a wide gaussian (a normalised convolution), so thick strokes are never taken
    for background and hollowed out, while a shadow across a photo still is.
    """
    cv2 = framing.opencv()

    h, w = g.shape
    top = float(g.max(initial=0))
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    inky = cv2.dilate((g > _otsu(g, max(top, 1e-6)) * max(top, 1e-6)).view(np.uint8), cross, iterations=2)
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


def _otsu(x: np.ndarray, top: float = 1.0) -> float:
    """Otsu's threshold of values in [0, ``top``] on 128 levels, as a share of ``top`` kept within [0.25, 0.6]."""
    hist = _levels(x, 256.0 / top, -0.5).reshape(128, 2).sum(axis=1)  # level k: values from k/128 to (k+1)/128
    edges = np.arange(128) / 128
    p = hist.astype(np.float64) / max(hist.sum(), 1)
    omega = np.cumsum(p)
    mu = np.cumsum(p * edges)
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    return float(np.clip(edges[int(np.argmax(between))], 0.25, 0.6))


def _halve(g: np.ndarray) -> np.ndarray:
    """Half the size, by area averaging, when the short side is at least ``2 * ONE_CHARACTER_SIDE``.

    One character is framed from at most about twice the detail the frame keeps: frame() draws
    it at 96 px and blurs it as EMNIST was blurred, which leaves about 64 px of detail, and a
    character covering half of a 256 px image still spans 64 px after halving. Every step after
    this one costs a quarter as much.
    """
    cv2 = framing.opencv()
    h, w = g.shape
    if min(h, w) < 2 * ONE_CHARACTER_SIDE:
        return g
    return cv2.resize(g, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


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
            image as it was worked on: halved when large (:func:`_halve`), so in pixels of that.

    Raises:
        HandwrittenError: naming the image, when it cannot be read; ``NoInk`` when it holds no ink.
    """
    label = _describe(source, name)
    framing = framing_from_meta({"framing": framing})
    ink, mask = normalise(_halve(load_grey(source, label, max_pixels)[0]), label)
    labels, comps = marks.components(mask, min_size=3)
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
        ``box`` [x0, y0, x1, y1] in the input image's pixels and ``space_before``.

    Raises:
        HandwrittenError: naming the image, when it cannot be read, holds no ink, or holds more
            separate marks than a line has (``marks.MAX_MARKS``).
    """
    label = _describe(source, name)
    grey, factor = load_grey(source, label, max_pixels)
    ink, mask = normalise(grey, label)
    labels, comps = marks.components(mask, min_size=3)
    groups, characters = marks.line_characters(labels, comps, label)
    for c in characters:
        c["box"] = [int(round(v * factor)) for v in c["box"]]  # in the input's pixels
    return ink, groups, characters
