"""What a request to the server brings: its body read with a size cap and a time limit, and the image in it.

Bodies are read in chunks up to a limit, whether or not a Content-Length is sent, and a client
that stops sending half-way is dropped after ``READ_TIMEOUT_S``. Images are checked for their
pixel count before they are decoded and must be one of ``opening.FORMATS``. Every fault is a
:class:`RequestError` carrying the 4xx status to answer with.
"""

import asyncio
import io

from handwritten.errors import HandwrittenError
from handwritten.opening import FORMATS, check_not_document

READ_TIMEOUT_S = 30.0  # a client that stops sending half-way through a body is dropped after this
MULTIPART_SLACK = 64_000  # room for a multipart body's headers and boundaries around the file


class RequestError(HandwrittenError):
    """A bad request: the HTTP status to answer with and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def query_names(*names: str):
    """A FastAPI dependency that refuses query parameters other than ``names``, and any given twice.

    Unknown ones are otherwise dropped in silence (``/api/predict?line=1`` would read one
    character and say nothing), and a repeated one would take its last value.
    """
    from starlette.requests import Request

    def check(request: Request) -> None:
        params = request.query_params
        unknown = sorted(set(params) - set(names))
        if unknown:
            takes = ", ".join(names) if names else "none"
            raise RequestError(422, f"unknown query parameter {', '.join(map(repr, unknown))}; "
                                    f"{request.url.path} takes: {takes}")
        for name in sorted(set(params)):
            if (times := len(params.getlist(name))) > 1:
                raise RequestError(422, f"query parameter {name!r} given {times} times; give it once")

    return check


def open_image(data: bytes, max_pixels: int):
    """Decode an uploaded image fully, refusing non-images, truncated files and oversized ones."""
    image = _open_header(data, max_pixels)
    _load(image)
    return image


def decode_upload(data: bytes, max_pixels: int):
    """An upload decoded as ``images`` reads it fastest: a plain PNG (a canvas) as uint8 grey, any
    other image as :func:`open_image` gives it; refused as :func:`open_image` refuses."""
    from handwritten.opening import plain_png_grey, png_grey

    grey = plain_png_grey(data, max_pixels)  # read from its header, without Pillow
    if grey is not None:
        return grey
    image = _open_header(data, max_pixels)
    grey = png_grey(data, image)
    if grey is not None:
        return grey
    _load(image)
    return image


def _open_header(data: bytes, max_pixels: int):
    """An upload opened by Pillow, its header read and its size checked; a large JPEG set to decode reduced."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"image too large: {exc}") from None
    except Exception:  # Pillow raises several types for bytes it cannot identify.
        try:
            check_not_document(data[:8], "body")
        except HandwrittenError as exc:
            raise RequestError(400, str(exc)) from None
        raise RequestError(
            400, f"body is not an image: {len(data)} bytes that are not {', '.join(FORMATS)}"
        ) from None
    width, height = image.size
    if width * height > max_pixels:
        raise RequestError(
            413,
            f"image too large: {width}x{height} is {width * height / 1e6:.1f} megapixels; "
            f"the limit is {max_pixels / 1e6:g} megapixels",
        )
    from handwritten.opening import _draft

    _draft(image)  # a large JPEG decodes at a fraction of its size; images.load_grey scales its boxes back
    if image.size != (width, height):
        image.info["full_size"] = (width, height)
    return image


def _load(image) -> None:
    """Decode an opened upload; truncated or corrupt data is a 400."""
    try:
        image.load()
    except Exception as exc:  # truncated or corrupt data surfaces as OSError, SyntaxError, ValueError...
        raise RequestError(400, f"{image.format} image could not be decoded (truncated or corrupt?): {exc}") from None


def frame_upload(data: bytes, recognizer, max_pixels: int):
    """Decode an upload and frame it as the model's training images are framed: uint8 28x28."""
    return frame_upload_as(data, recognizer, max_pixels)[0]


def frame_upload_as(data: bytes, recognizer, max_pixels: int) -> tuple:
    """:func:`frame_upload`'s image, and the upload's format as Pillow names it ("PNG", "JPEG", ...),
    from one decode."""
    from handwritten.images import preprocess

    decoded = decode_upload(data, max_pixels)
    kind = getattr(decoded, "format", None) or "PNG"  # decoded straight to grey: a PNG
    return preprocess(decoded, recognizer.framing, name="image", max_pixels=max_pixels), kind


def examine_upload(data: bytes, recognizer, max_pixels: int):
    """Decode an upload, frame it and measure whether it holds a character: ``(uint8 28x28, cues)``.

    A blank image gives ``(None, None)`` where :func:`frame_upload` raises; the cues are
    ``handwritten.rejection``'s.
    """
    from handwritten.rejection import examine

    return examine(decode_upload(data, max_pixels), recognizer.framing, "image", max_pixels)


def read_line_upload(data: bytes, recognizer, max_pixels: int, top: int, charset: str | None = None) -> dict:
    """Decode an upload and read the line of characters in it (see ``Recognizer.read_line``)."""
    return recognizer.read_line(decode_upload(data, max_pixels), top=top, name="image", charset=charset)


async def read_upload(request, max_bytes: int, timeout: float = READ_TIMEOUT_S) -> bytes:
    """The image bytes of a request: a raw body, or the file of a multipart upload."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = media == "multipart/form-data"
    if not (multipart or media in ("", "application/octet-stream") or media.startswith("image/")):
        raise RequestError(
            415,
            f"content type {media!r} is not accepted: send the image as the body (image/png, image/jpeg, "
            "application/octet-stream) or as a multipart/form-data upload in field 'file'",
        )
    body = await read_body(request, max_bytes + (MULTIPART_SLACK if multipart else 0), max_bytes, timeout)
    if multipart:
        body = await _multipart_file(request.scope, body)
    if not body:
        raise RequestError(400, "empty body: send an image (PNG, JPEG, ...) as the body or in field 'file'")
    if len(body) > max_bytes:
        raise RequestError(413, f"image too large: {len(body)} bytes; the limit is {max_bytes} bytes")
    return body


async def read_body(request, limit: int, max_bytes: int, timeout: float) -> bytes:
    """A request's body, refused once it is over ``limit`` bytes (by its length or as it arrives) or late."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise RequestError(413, f"body too large: {int(length)} bytes; the limit is {max_bytes} bytes")
    try:
        return await asyncio.wait_for(_read_capped(request, limit, max_bytes), timeout)
    except asyncio.TimeoutError:
        raise RequestError(408, f"body not received within {timeout:g} s") from None


async def parse_form(scope, body: bytes, *, max_files: int, max_fields: int):
    """A multipart ``body`` already read into memory, parsed as a form; a malformed one is a 400."""
    from starlette.requests import Request

    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(scope, receive).form(max_files=max_files, max_fields=max_fields)
    except Exception as exc:  # the multipart parser's errors all mean a malformed body
        raise RequestError(400, f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None


async def _read_capped(request, limit: int, max_bytes: int) -> bytes:
    from starlette.requests import ClientDisconnect

    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError(413, f"body too large: over {max_bytes} bytes, the limit")
            chunks.append(chunk)
    except ClientDisconnect:
        raise RequestError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


async def _multipart_file(scope, body: bytes) -> bytes:
    """The file in a multipart body already read (and size-checked) into memory."""
    from starlette.datastructures import UploadFile

    form = await parse_form(scope, body, max_files=4, max_fields=16)
    try:
        files = [value for key, value in form.multi_items() if isinstance(value, UploadFile)]
        files.sort(key=lambda f: f is not form.get("file"))  # field 'file' first, else the first file
        if not files:
            raise RequestError(422, "multipart body has no file: send the image in field 'file'")
        return await files[0].read()
    finally:
        await form.close()
