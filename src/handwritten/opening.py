"""Opening people's images safely: the formats read, documents refused unopened, the pixel limit
checked from the header before decoding, and the image turned to grey and reduced to a working size.
"""

from __future__ import annotations

import threading

import numpy as np

from handwritten import framing

MAX_PIXELS = 20_000_000  # a 20 MP phone photo; more is refused before it is decoded
WORK_PIXELS = 1_500_000  # images are reduced to about this many pixels before processing
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


def load_grey(source, name: str | None = None, max_pixels: int = MAX_PIXELS,
              least_side: int | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Open an image as float32 grey ``(H, W)`` in [0, 1], reduced to about ``WORK_PIXELS``.

    Returns ``(grey, factor)``: ``factor`` is ``(x, y)``, the input's width and height over the
    returned ones (1 or more each: reducing rounds each side on its own).
    With ``least_side``, an image whose short side is at least twice that is halved as well
    (area averaging), before it is turned to floats.

    ``source`` is a path, bytes, a file object, a PIL image or a numpy array (grey, RGB or RGBA;
    uint8 or float in [0, 1]). Transparent pixels are composited onto a background that contrasts
    with the opaque ones, so strokes on a transparent canvas survive in any colour.

    Raises:
        HandwrittenError: naming the image: missing file, not an image, truncated, 0x0, more
            than ``max_pixels`` pixels (checked from the header, before decoding), pixels that are
            NaN or infinite (a float TIFF or array).
    """
    import io

    from PIL import Image

    from handwritten.errors import HandwrittenError

    label = _describe(source, name)
    if isinstance(source, np.ndarray):
        return _grey_from_array(source, label, max_pixels, least_side)
    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else None
    if data is not None:
        if not data:
            raise HandwrittenError(f"{label}: empty file (0 bytes)")
        grey = plain_png_grey(data, max_pixels)
        if grey is not None:
            return _reduce(grey, least_side=least_side)
        source = io.BytesIO(data)  # a file object, which the error paths can read again
    opened = None  # closed here if opened here
    try:
        im, opened = _open(source, label)
        return _decode(im, im is opened, label, max_pixels, data, least_side)
    except HandwrittenError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning, Image.UnidentifiedImageError,
            OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _unreadable(exc, source, label, max_pixels) from None
    finally:
        if opened is not None:
            opened.close()


def _unreadable(exc: Exception, source, label: str, max_pixels: int) -> Exception:
    """The error that says why Pillow could not read the image ``label``, from what it raised."""
    from PIL import Image

    from handwritten.errors import HandwrittenError

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        import re

        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        return HandwrittenError(
            f"{label}: the image declares {declared}, more than the limit of {max_pixels:,} pixels "
            "(refused before decoding, as a possible decompression bomb)"
        )
    if isinstance(exc, Image.UnidentifiedImageError):
        head = _head(source)
        check_not_document(head, label)
        if _declares_no_pixels(head):
            return HandwrittenError(f"{label}: the image is empty (0x0 pixels)")
        return HandwrittenError(f"{label}: not an image this tool reads ({', '.join(FORMATS)})")
    if isinstance(exc, PermissionError):
        return HandwrittenError(f"{label}: cannot read the file (permission denied)")
    return HandwrittenError(f"{label}: truncated or damaged image ({exc})")


def _grey_from_array(source: np.ndarray, label: str, max_pixels: int,
                     least_side: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """An image given as a numpy array (grey, RGB or RGBA; integer or float in [0, 1]) as ``load_grey`` returns it."""
    from handwritten.errors import HandwrittenError

    if not (source.ndim == 2 or (source.ndim == 3 and source.shape[2] in (3, 4))):
        raise HandwrittenError(f"{label}: an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {source.shape}")
    if source.size == 0:
        raise HandwrittenError(f"{label}: the image is empty (0x0 pixels)")
    if source.shape[0] * source.shape[1] > max_pixels:
        raise HandwrittenError(f"{label}: {source.shape[1]}x{source.shape[0]} pixels is more than the limit of {max_pixels:,}")
    if source.dtype == np.uint8:
        return _reduce(_grey_uint8(source), least_side=least_side)
    if source.dtype.kind not in "uif":
        raise HandwrittenError(f"{label}: an image array must hold numbers, got dtype {source.dtype}")
    arr = _levels_to_unit(source.astype(np.float32), label, integer=source.dtype.kind in "ui")
    if arr.ndim == 3:
        rgb = arr[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        arr = _composite(rgb, arr[..., 3]) if arr.shape[2] == 4 else rgb
    return _reduce(np.clip(arr, 0, 1), least_side=least_side)


def _open(source, label: str):
    """Open ``source`` with Pillow, header only: ``(image, opened)``, ``opened`` being what to close, or None.

    Paths and file objects are opened here, in the formats this tool reads; a PIL image is used
    as it is. Missing, empty and folder paths are refused by name.
    """
    import os
    import warnings

    from PIL import Image

    from handwritten.errors import HandwrittenError

    if isinstance(source, Image.Image):
        return source, None
    if isinstance(source, (str, os.PathLike)):
        from handwritten.paths import file_problem

        # A FIFO or a device is refused before it is opened: opening a FIFO waits for a writer.
        if problem := file_problem(source):
            raise HandwrittenError(f"{label}: {problem}")
        if os.path.getsize(source) == 0:
            raise HandwrittenError(f"{label}: empty file (0 bytes)")
    with warnings.catch_warnings():
        # Pillow warns above its own limit and refuses at twice it; ours is lower and checked below.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        im = Image.open(source, formats=FORMATS)
    return im, im


def _decode(im, opened_here: bool, label: str, max_pixels: int, data: bytes | None = None,
            least_side: int | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Check an opened image's size against ``max_pixels``, then decode it to grey, reduced.

    ``data`` is the file's bytes when they are at hand: a plain PNG is then decoded from them
    directly (:func:`png_grey`).
    """
    from PIL import ImageOps

    from handwritten.errors import HandwrittenError

    width, height = im.size
    if width == 0 or height == 0:
        raise HandwrittenError(f"{label}: the image is empty ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise HandwrittenError(
            f"{label}: {width}x{height} pixels is more than the limit of {max_pixels:,} pixels (refused before decoding)"
        )
    grey = png_grey(data, im) if data is not None else None
    if grey is not None:
        return _reduce(grey, least_side=least_side)
    im.seek(0)  # the first frame of an animation
    size = (width, height)
    if opened_here:
        _draft(im)
    elif "full_size" in im.info:  # decoded reduced by uploads.open_image
        size = tuple(im.info["full_size"])
    stored = im.size
    im = ImageOps.exif_transpose(im)  # phone photos are stored sideways with an EXIF rotation
    if im.size != stored:  # turned a quarter: the size as given is turned too
        size = size[::-1]
    return _reduce(_to_grey(im, label), size, least_side)


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


def _levels_to_unit(arr: np.ndarray, label: str, *, integer: bool) -> np.ndarray:
    """Pixels of 8 or 16 bits, or floats in [0, 1], as float32 in [0, 1]; floats beyond those
    ranges are stretched from their lowest to their highest.

    NaN or infinite pixels are refused, naming the image (``label``): no level stands for them.
    """
    from handwritten.errors import HandwrittenError

    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        raise HandwrittenError(f"{label}: {bad:,} {'pixel is' if bad == 1 else 'pixels are'} NaN or infinite; "
                               "an image's pixels are numbers")
    low, top = float(arr.min()), float(arr.max())  # not empty: the size was checked
    if low >= 0 and (integer or top > 1.0) and top <= 65535:  # 8 or 16 bit levels
        return arr / np.float32(65535.0 if top > 255 else 255.0)
    if low >= 0 and top <= 1.0:
        return arr
    return (arr - np.float32(low)) / np.float32(max(top - low, 1e-30))


def _to_grey(im, label: str = "image") -> np.ndarray:
    """A PIL image of any mode as grey: uint8, or float32 in [0, 1] when it needs more levels or alpha."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(im.convert("F"), dtype=np.float32)
        return _levels_to_unit(arr, label, integer=im.mode != "F")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        return _grey_uint8(np.asarray(im if im.mode == "RGBA" else im.convert("RGBA")))
    if im.mode == "RGB":
        return _grey_uint8(np.asarray(im))
    return np.asarray(im if im.mode == "L" else im.convert("L"))


def _grey_uint8(pixels: np.ndarray, bgr: bool = False) -> np.ndarray:
    """uint8 pixels, grey ``(H, W)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)`` (``bgr``: BGR, BGRA), as uint8 grey, transparency composited."""
    cv2 = framing.opencv()

    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)
    grey, alpha = cv2.cvtColor(pixels, cv2.COLOR_BGRA2GRAY if bgr else cv2.COLOR_RGBA2GRAY), cv2.extractChannel(pixels, 3)
    if cv2.minMaxLoc(alpha)[0] == 255:  # an alpha channel that hides nothing
        return grey
    if cv2.countNonZero(grey) == 0:  # black on transparent black, as drawing apps save: onto white, as below
        return cv2.bitwise_not(alpha)
    # _composite's rule, in 8 bits: onto white if what is drawn is dark, onto black if light.
    # cv2.multiply rounds x * alpha / 255 to the nearest level, as (x * alpha + 127) // 255 does.
    drawn = cv2.compare(alpha, 127, cv2.CMP_GT)
    count = cv2.countNonZero(drawn)
    if count == 0 or cv2.sumElems(cv2.min(grey, drawn))[0] < 127.5 * count:  # the drawn pixels' mean grey
        return cv2.bitwise_not(cv2.multiply(cv2.bitwise_not(grey), alpha, scale=1 / 255))
    return cv2.multiply(grey, alpha, scale=1 / 255)


def png_grey(data: bytes, im) -> np.ndarray | None:
    """A plain PNG (8-bit grey, RGB or RGBA, no EXIF) decoded by OpenCV from ``data``, as uint8 grey:
    the files :func:`plain_png_grey` leaves (a transparent colour key, or Wuffs not installed).

    ``im`` is the file opened by Pillow (header read, size checked). Any other image gives None,
    and so does a PNG OpenCV cannot decode (truncated, damaged): Pillow decodes those, and
    names the fault. Pillow's own decode of a canvas PNG costs a copy of every pixel on the way
    into numpy and a second pass to look for an EXIF rotation.
    """
    cv2 = framing.opencv()

    channels = {"L": 0, "RGB": 3, "RGBA": 4}.get(im.mode)
    if im.format != "PNG" or channels is None or b"eXIf" in data:
        return None
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint8 or pixels.shape[:2] != (im.height, im.width):
        return None
    if (pixels.shape[2] if pixels.ndim == 3 else 0) != channels:
        return None
    return _grey_uint8(pixels, bgr=True)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def plain_png_grey(data: bytes, max_pixels: int) -> np.ndarray | None:
    """A plain PNG (8-bit grey, RGB or RGBA; no EXIF, no transparent colour) as uint8 grey, read
    from its header and decoded by Wuffs, without Pillow; None for any other file, one larger than
    ``max_pixels``, or one Wuffs cannot decode (or is not installed): Pillow opens those, and names
    any fault, and :func:`png_grey` decodes the plain ones among them.

    Wuffs is a memory-safe decoder, several times faster on a canvas PNG than libpng with the
    system's zlib. A transparent colour (tRNS) in a grey or RGB file, which Pillow's and
    OpenCV's decodes leave opaque, would be honoured by Wuffs: such files are left to them.
    """
    import struct

    if len(data) < 33 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if depth != 8 or colour not in (0, 2, 6) or not 0 < width * height <= max_pixels:
        return None
    if b"eXIf" in data or (colour != 6 and b"tRNS" in data):
        return None
    pixels = _wuffs_bgra(data)
    if pixels is None or pixels.shape[:2] != (height, width):
        return None
    return _grey_uint8(pixels, bgr=True)


_WUFFS = threading.local()  # a PNG decoder per thread: the server prepares images in several


def _wuffs_bgra(data: bytes) -> np.ndarray | None:
    """A PNG decoded by Wuffs (a memory-safe decoder) as uint8 BGRA; None when it fails or is not installed."""
    decoder = getattr(_WUFFS, "decoder", None)
    if decoder is None:
        try:
            from pywuffs import ImageDecoderType, PixelFormat
            from pywuffs.aux import ImageDecoder, ImageDecoderConfig
        except ImportError:  # remembered: a failed import is looked for again on every call
            _WUFFS.decoder = False
            return None
        config = ImageDecoderConfig()
        config.enabled_decoders = [ImageDecoderType.PNG]
        config.pixel_format = PixelFormat.BGRA_NONPREMUL
        decoder = _WUFFS.decoder = ImageDecoder(config)
    if decoder is False:
        return None
    result = decoder.decode(data)
    pixels = result.pixbuf
    if result.error_message or pixels.ndim != 3 or pixels.shape[2] != 4:
        return None
    return pixels


def _draft(im) -> None:
    """Let a large JPEG decode at 1/2, 1/4 or 1/8 of its size, grey, while still above ``WORK_PIXELS``.

    The decoder scales in the frequency domain, which averages like the area reduction that
    follows anyway, at a fraction of the time of decoding every pixel.
    """
    w, h = im.size
    k = int((w * h / WORK_PIXELS) ** 0.5)
    if im.format in ("JPEG", "MPO") and k >= 2 and im.mode in ("L", "RGB", "CMYK"):
        im.draft("L", (max(1, w // k), max(1, h // k)))


def _reduce(g: np.ndarray, size: tuple[int, int] | None = None,
            least_side: int | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Shrink to about ``WORK_PIXELS`` with area averaging (the 28x28 result needs no more); float32 in [0, 1].

    ``size`` is the image's (width, height) as given (before a reduced JPEG decode); the factor
    returned is ``(x, y)``, that width and height over the returned ones (1 or more each). With
    ``least_side``, an image whose short side is at least twice that is halved too.
    """
    cv2 = framing.opencv()

    h, w = g.shape
    size = size or (w, h)
    if w * h > WORK_PIXELS:
        k = (WORK_PIXELS / (w * h)) ** 0.5
        g = cv2.resize(g, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2.INTER_AREA)
    h, w = g.shape
    if least_side and min(h, w) >= 2 * least_side:
        g = cv2.resize(g, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    # Turned to floats last, when smallest: a large temporary costs more in fresh memory than in arithmetic.
    out = np.multiply(g, np.float32(1 / 255.0), dtype=np.float32) if g.dtype == np.uint8 else np.asarray(g, dtype=np.float32)
    return out, (max(1.0, size[0] / out.shape[1]), max(1.0, size[1] / out.shape[0]))
