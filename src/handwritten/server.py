"""``handwritten serve``: a web page and an HTTP API that recognise drawn or uploaded characters.

The model is loaded once. Nothing slow runs on the event loop: images are decoded and framed
in a thread pool, in parallel, and the framed 28x28 images of requests that arrive together
go to the model as one batch (``ModelWorker``), so a large photo delays only its own answer
and many clients cost few model calls. Request bodies are read with a size cap and a time
limit, images are checked for their pixel count before they are decoded, and every bad input
gets a 4xx JSON ``{"error": ...}`` that says what is wrong.

The page (``static/``) needs nothing from outside the package, so it works offline.
"""

# No "from __future__ import annotations": FastAPI reads the endpoints' annotations at run time.
import asyncio
import base64
import concurrent.futures
import functools
import io
import os
import queue
import threading
from pathlib import Path

from handwritten import __version__
from handwritten.errors import HandwrittenError

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_PIXELS = 20_000_000
READ_TIMEOUT_S = 30.0  # a client that stops sending half-way through a body is dropped after this
MODEL_TIMEOUT_S = 60.0  # a request waits at most this long for the model before getting a 503
MAX_BATCH = 64  # images per model call; more queued requests wait for the next call
MULTIPART_SLACK = 64_000  # room for a multipart body's headers and boundaries around the file
# Formats read from uploads. Pillow can open more (EPS runs Ghostscript), which a server should not.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")  # JPEG includes phones' multi-picture (MPO) files
# The page loads only its own files; this also keeps it working offline.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


class RequestError(HandwrittenError):
    """A bad request: the HTTP status to answer with and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# --- images -------------------------------------------------------------------------------


def open_image(data: bytes, max_pixels: int):
    """Decode an uploaded image fully, refusing non-images, truncated files and oversized ones."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise RequestError(413, f"image too large: {exc}") from None
    except Exception:  # Pillow raises several types for bytes it cannot identify.
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
    try:
        image.load()
    except Exception as exc:  # truncated or corrupt data surfaces as OSError, SyntaxError, ValueError...
        raise RequestError(400, f"{image.format} image could not be decoded (truncated or corrupt?): {exc}") from None
    return image


def png_base64(array) -> str:
    """A uint8 array as a base64 PNG, for showing the model's input in a page."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def candidates(pairs) -> list[dict]:
    """The Recognizer's ``[[character, probability], ...]`` as JSON objects."""
    return [{"character": str(c), "probability": float(p)} for c, p in pairs]


def frame_upload(data: bytes, recognizer, max_pixels: int):
    """Decode an upload and frame it as the model's training images are framed: ``(uint8 28x28, cues)``.

    A blank image gives ``(None, None)``; the cues say whether the ink looks like a character
    (``handwritten.rejection``).
    """
    from handwritten.rejection import examine

    image = open_image(data, max_pixels)
    return examine(image, recognizer.framing, "image", max_pixels)


# --- the model thread ----------------------------------------------------------------------


class ModelWorker:
    """Runs every single-character model call in one thread, batching the images that wait together.

    Images arrive already framed (28x28), so the costly part, decoding and framing a person's
    image, runs in parallel in the request threads and a large photo delays only its own
    answer. The model call that remains costs about the same for one image as for dozens, so
    whatever arrived while the previous call ran goes into the next: the batch grows with the
    load by itself, without a timer.
    """

    def __init__(self, recognizer, max_batch: int = MAX_BATCH):
        self.recognizer = recognizer
        self.max_batch = max_batch
        self.jobs: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="handwritten-model", daemon=True)
        self.thread.start()

    def submit(self, framed) -> concurrent.futures.Future:
        """A future for the class probabilities of one framed uint8 28x28 image."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((framed, future))
        return future

    def _run(self) -> None:
        import numpy as np

        while True:
            batch = [self.jobs.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            # A request that timed out has cancelled its future; it is not worth a model call.
            batch = [(x, future) for x, future in batch if future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                probs = self.recognizer.predict_arrays(np.stack([x for x, _ in batch]))
            except Exception as exc:  # handed to every waiting request, which answers with it
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), p in zip(batch, probs):
                future.set_result(p)


# --- request bodies ------------------------------------------------------------------------


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
    limit = max_bytes + (MULTIPART_SLACK if multipart else 0)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise RequestError(413, f"body too large: {int(length)} bytes; the limit is {max_bytes} bytes")
    try:
        body = await asyncio.wait_for(_read_capped(request, limit, max_bytes), timeout)
    except asyncio.TimeoutError:
        raise RequestError(408, f"body not received within {timeout:g} s") from None
    if multipart:
        body = await _multipart_file(request.scope, body)
    if not body:
        raise RequestError(400, "empty body: send an image (PNG, JPEG, ...) as the body or in field 'file'")
    if len(body) > max_bytes:
        raise RequestError(413, f"image too large: {len(body)} bytes; the limit is {max_bytes} bytes")
    return body


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
    from starlette.requests import Request

    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, receive).form(max_files=4, max_fields=16)
    except Exception as exc:  # the multipart parser's errors all mean a malformed body
        raise RequestError(400, f"malformed multipart body: {getattr(exc, 'detail', exc)}") from None
    try:
        files = [value for key, value in form.multi_items() if isinstance(value, UploadFile)]
        files.sort(key=lambda f: f is not form.get("file"))  # field 'file' first, else the first file
        if not files:
            raise RequestError(422, "multipart body has no file: send the image in field 'file'")
        return await files[0].read()
    finally:
        await form.close()


# --- the application -----------------------------------------------------------------------


@functools.cache
def schemas():
    """The JSON shapes of the API (pydantic is imported only when a server is made)."""
    from pydantic import BaseModel, Field

    class ApiError(BaseModel):
        error: str = Field(description="what is wrong with the request")

    class Candidate(BaseModel):
        character: str
        probability: float

    class Prediction(BaseModel):
        character: str | None = Field(description="the most likely character; null when the image holds none")
        probability: float | None = Field(description="its calibrated probability; null when not a character")
        top: list[Candidate] = Field(description="the most likely characters, most likely first")
        unsure: bool = Field(description="probability below the server's minimum confidence, or not a character")
        reason: str | None = Field(None, description="why the image is not taken for a character (blank, a speck, "
                                   "a scribble, a shape, a texture, several characters)")
        input_png: str | None = Field(description="base64 PNG of the 28x28 image the model saw; null when blank")

    class LineCharacter(BaseModel):
        character: str
        probability: float
        unsure: bool = Field(description="probability below the server's minimum confidence")
        box: list[int] = Field(description="[x0, y0, x1, y1] in the uploaded image's pixels")
        space_before: bool = Field(False, description="a gap much wider than the others comes before it")
        top: list[Candidate]

    class LineReading(BaseModel):
        text: str = Field(description="the characters read, with a space where a gap is much wider than the others")
        characters: list[LineCharacter]

    class ModelInfo(BaseModel, extra="allow"):
        name: str
        classes: int
        mapping: str = Field(description="mapping[k] is the character of class k")
        params: int | None = Field(None, description="number of parameters, when known")
        test_accuracy: float | None = Field(None, description="accuracy on its test set, when known")
        split: str | None = Field(None, description="the EMNIST split it was trained on")
        synthetic: bool | None = Field(None, description="trained on the synthetic offline sample, not EMNIST")

    class Health(BaseModel):
        status: str
        model: str

    return ApiError, Candidate, Prediction, LineCharacter, LineReading, ModelInfo, Health


def image_body_doc() -> dict:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "requestBody": {
            "required": True,
            "description": "an image (PNG, JPEG, GIF, BMP, TIFF, WebP, PPM) as the raw body or as "
            "a multipart upload in field 'file'",
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
                "image/png": binary,
                "image/jpeg": binary,
                "application/octet-stream": binary,
            },
        }
    }


def create_app(
    model, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS, read_timeout: float = READ_TIMEOUT_S,
    min_confidence: float | None = None,
):
    """The FastAPI application serving ``model``: a model file's path or a loaded ``Recognizer``.

    Args:
        model: path to a ``.keras``, ``.h5`` or ``.onnx`` model, or a ``handwritten.predict.Recognizer``.
        max_bytes: largest accepted image file in bytes.
        max_pixels: largest accepted image in pixels (width x height), checked before decoding.
        read_timeout: seconds a client may take to send its body before it gets a 408.
        min_confidence: answers below this calibrated probability are marked unsure (default:
            the model's own; a given ``Recognizer`` keeps its own).
    """
    from typing import Annotated

    from fastapi import FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.staticfiles import StaticFiles

    if max_bytes <= 0 or max_pixels <= 0:
        raise HandwrittenError(f"max_bytes and max_pixels must be positive, got {max_bytes} and {max_pixels}")
    if isinstance(model, (str, os.PathLike)):
        from handwritten.predict import Recognizer

        model = Recognizer(model, max_pixels=max_pixels, min_confidence=min_confidence)
    recognizer = model
    info = dict(recognizer.info())
    worker = ModelWorker(recognizer)
    ApiError, _, Prediction, _, LineReading, ModelInfo, Health = schemas()
    mapping = recognizer.mapping
    classes = len(mapping)

    errors = {
        400: {"model": ApiError, "description": "not an image, an empty body, a truncated image or a malformed upload"},
        408: {"model": ApiError, "description": "the body did not arrive in time"},
        413: {"model": ApiError, "description": f"image over {max_bytes} bytes or {max_pixels} pixels"},
        415: {"model": ApiError, "description": "content type is not an image, octet-stream or multipart upload"},
        422: {"model": ApiError, "description": "bad query parameter, no file in the upload, or a line with no ink"},
        503: {"model": ApiError, "description": "the model did not answer in time"},
    }
    app = FastAPI(
        title="handwritten",
        description="Recognise handwritten characters with a model trained on EMNIST.",
        version=__version__,
        docs_url=None,  # the interactive docs load scripts from outside; the page must work offline
        redoc_url=None,
    )

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestError)
    async def request_error(request, exc):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc):
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(parts)}, status_code=422)

    async def answer(future):
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), MODEL_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RequestError(503, f"the model did not answer within {MODEL_TIMEOUT_S:g} s; try again") from None

    async def in_thread(fn, *args, **kwargs):
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except RequestError:
            raise
        except HandwrittenError as exc:  # the image is readable but not usable, e.g. no ink on it
            raise RequestError(422, str(exc)) from None

    top_doc = f"how many of the most likely characters to return (1-{classes})"

    @app.post("/api/predict", response_model=Prediction, responses=errors, openapi_extra=image_body_doc())
    async def predict(request: Request, top: Annotated[int, Query(ge=1, le=classes, description=top_doc)] = min(5, classes)):
        """Recognise the one character in an image."""
        data = await read_upload(request, max_bytes, read_timeout)
        framed, cues = await in_thread(frame_upload, data, recognizer, max_pixels)
        probs = None if framed is None else await answer(worker.submit(framed))
        result = recognizer.answer(probs, top, cues)
        return {**result, "top": candidates(result["top"]),
                "input_png": None if framed is None else png_base64(framed)}

    @app.post("/api/predict/line", response_model=LineReading, responses=errors, openapi_extra=image_body_doc())
    async def predict_line(request: Request, top: Annotated[int, Query(ge=1, le=classes, description=top_doc)] = min(3, classes)):
        """Read a line of characters written left to right."""
        data = await read_upload(request, max_bytes, read_timeout)
        image = await in_thread(open_image, data, max_pixels)
        # Segmenting a line is slow; the Recognizer's own lock keeps its model calls one at a time.
        result = await in_thread(recognizer.read_line, image, top=top)
        chars = [
            {
                "character": c["character"],
                "probability": float(c["probability"]),
                "box": [int(v) for v in c["box"]],
                "space_before": bool(c.get("space_before", False)),
                "unsure": bool(c["unsure"]),
                "top": candidates(c["top"][:top]),
            }
            for c in result["characters"]
        ]
        return {"text": result["text"], "characters": chars}

    @app.get("/api/model", response_model=ModelInfo)
    async def model_info():
        """The model being served: name, classes, parameter count, test accuracy when known."""
        return info

    @app.get("/healthz", response_model=Health)
    async def healthz():
        """Answers as long as the server is up and its model loaded."""
        return {"status": "ok", "model": str(info.get("name", ""))}

    @app.get("/", response_class=FileResponse, responses={200: {"content": {"text/html": {}}}})
    async def page():
        """The page to draw or upload characters and see them recognised."""
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


# --- the command ---------------------------------------------------------------------------


def run_serve(args) -> int:
    if not 0 <= args.port <= 65535:
        raise HandwrittenError(f"--port {args.port}: a port is between 0 and 65535")
    from handwritten.limits import check_number

    check_number("--max-mb", args.max_mb, 0, 1_000_000, ends="(]")  # a terabyte: any more is a typo
    check_number("--max-megapixels", args.max_megapixels, 0, 1_000_000, ends="(]")
    app = create_app(args.model, max_bytes=int(args.max_mb * 1e6), max_pixels=int(args.max_megapixels * 1e6),
                     min_confidence=args.min_confidence)
    import uvicorn

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}; anyone who can reach it can use the model (there is no login)")
    uvicorn.run(app, host=args.host, port=args.port, access_log=not args.quiet, log_level="info")
    return 0


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve a web page and an HTTP API that recognise characters")
    p.add_argument("model", help="model file (.keras, .h5 or .onnx), e.g. demo/model_2.keras from make demo")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    p.add_argument("--max-mb", type=float, default=DEFAULT_MAX_BYTES / 1e6, help="largest image file accepted, MB (default: %(default)s)")
    p.add_argument(
        "--max-megapixels", type=float, default=DEFAULT_MAX_PIXELS / 1e6, help="largest image accepted, megapixels (default: %(default)s)"
    )
    p.add_argument("--min-confidence", type=float, default=None, metavar="P",
                   help="mark answers whose calibrated probability is below P as unsure (default: %(default)s, "
                        "meaning the model's own, else 0.5)")
    p.add_argument("--quiet", action="store_true", help="do not log each request (default: %(default)s)")
    p.set_defaults(run=run_serve)
