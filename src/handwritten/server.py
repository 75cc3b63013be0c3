"""``handwritten serve``: a web page and an HTTP API that recognise drawn or uploaded characters.

The model is loaded once. Nothing slow runs on the event loop: images are decoded and framed
by a few threads in parallel (``workers.ImageWorkers``), and the framed 28x28 images of
requests that arrive together go to the model as one batch (``workers.ModelWorker``), so a
large photo delays only its own answer and many clients cost few model calls. Request bodies
are read with a size cap and a time limit, images are checked for their pixel count before
they are decoded (``uploads``), and every bad input gets a 4xx JSON ``{"error": ...}`` that
says what is wrong. An image that holds no character (blank, a scribble, a shape ...) is not
an error: it is answered ``character: null`` with a ``reason`` (``handwritten.rejection``).

No request holds the server for long: preparing an image has a deadline (503 after it), a
client must send its request headers within ``HEADER_TIMEOUT_S``, and on SIGTERM requests
still running after ``SHUTDOWN_GRACE_S`` are cancelled. Only requests for the host names the
server is bound to are answered (a web page elsewhere cannot reach a server on 127.0.0.1
through a name of its own, DNS rebinding), unless ``--allow-host`` adds more.

The page (``static/``) needs nothing from outside the package, so it works offline.
"""

# No "from __future__ import annotations": FastAPI reads the endpoints' annotations at run time.
import asyncio
import base64
import json
from dataclasses import dataclass
from pathlib import Path

from handwritten import __version__
from handwritten.api_schemas import image_body_doc, schemas
from handwritten.errors import HandwrittenError
from handwritten.guards import LOOPBACK_HOSTS, HeaderLimit, HostCheck
from handwritten.uploads import (  # noqa: F401 (frame_upload, open_image: for callers)
    READ_TIMEOUT_S, RequestError, examine_upload, frame_upload, open_image, query_names, read_line_upload, read_upload,
)
from handwritten.workers import Busy, ImageWorkers, ModelWorker

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_PIXELS = 20_000_000
MODEL_TIMEOUT_S = 60.0  # a request waits at most this long for the model before getting a 503
# A request's image is decoded and framed (or its line read) within this, else it gets a 503.
# A line of the most marks allowed takes a few seconds on one core; a normal one well under 1 s.
PREPARE_TIMEOUT_S = 20.0
KEEP_ALIVE_S = 5  # an idle connection between requests is closed after this
MAX_HEADER_BYTES = 16_384  # request line and headers; more is answered 431 (guards.HeaderLimit)
SHUTDOWN_GRACE_S = 3  # on SIGTERM or Ctrl-C, requests still running after this are cancelled
# The page loads only its own files; this also keeps it working offline.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


# --- answers -------------------------------------------------------------------------------


def png_base64(array) -> str:
    """A uint8 array as a base64 PNG, for showing the model's input in a page."""
    from handwritten.framing import opencv

    # Stored, not deflated: 28x28 pixels are under 1 KB either way, and deflating costs twice the time.
    ok, png = opencv().imencode(".png", array, [opencv().IMWRITE_PNG_COMPRESSION, 0])
    return base64.b64encode(png.tobytes()).decode("ascii")


def prediction_json(recognizer, framed, cues, probs, top: int, allowed=None) -> bytes:
    """The answer to ``/api/predict`` as JSON bytes, made where the work was done, not on the event loop.

    ``framed`` and ``probs`` are None for an image without ink; ``Recognizer.answer`` restricts
    to the ``allowed`` classes and decides whether the image holds a character at all.
    """
    result = recognizer.answer(probs, top, cues, allowed=allowed)
    input_png = None if framed is None else png_base64(framed)
    return json.dumps({"reason": None, **result, "top": candidates(result["top"]), "input_png": input_png}).encode()


def candidates(pairs) -> list[dict]:
    """The Recognizer's ``[[character, probability], ...]`` as JSON objects."""
    return [{"character": str(c), "probability": float(p)} for c, p in pairs]


def recognise_upload(recognizer, max_pixels: int, data: bytes, top: int, allowed) -> bytes:
    """Frame an upload and run the model on it, in one image thread: one handoff per request (onnxruntime)."""
    framed, cues = examine_upload(data, recognizer, max_pixels)
    probs = None if framed is None else recognizer.predict_arrays(framed[None])[0]
    return prediction_json(recognizer, framed, cues, probs, top, allowed)


# --- the application -----------------------------------------------------------------------


@dataclass
class Served:
    """What the routes share: the model, where the work runs, and the limits on a request."""

    recognizer: object
    worker: ModelWorker | None  # None when onnxruntime runs right after framing, in the image threads
    preparers: ImageWorkers
    max_bytes: int
    max_pixels: int
    read_timeout: float
    prepare_timeout: float

    async def answer(self, future):
        """The model thread's answer to ``future``, waited for at most ``MODEL_TIMEOUT_S``."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), MODEL_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise RequestError(503, f"the model did not answer within {MODEL_TIMEOUT_S:g} s; try again") from None

    async def prepare(self, fn, *args):
        """``fn(*args)`` in an image thread, waited for at most ``prepare_timeout`` seconds."""
        try:
            future = self.preparers.submit(fn, *args)
        except Busy as exc:
            raise RequestError(503, f"the server is busy: {exc}; try again shortly") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.prepare_timeout)
        except asyncio.TimeoutError:  # a job not yet started is skipped; one running finishes unread
            raise RequestError(
                503, f"the image was not read within {self.prepare_timeout:g} s (the server is busy); try again shortly"
            ) from None
        except RequestError:
            raise
        except HandwrittenError as exc:  # the image is readable but not usable, e.g. a line with no ink
            raise RequestError(422, str(exc)) from None

    def allowed(self, charset):
        """The charset's classes; a bad charset is answered 422 before the body is read."""
        try:
            return self.recognizer.classes(charset)
        except HandwrittenError as exc:
            raise RequestError(422, f"charset: {exc}") from None

    async def predict(self, request, top: int, charset) -> bytes:
        """The JSON answer to ``/api/predict``: one character, or why the image holds none."""
        chosen = self.allowed(charset)
        data = await read_upload(request, self.max_bytes, self.read_timeout)
        if self.worker is None:
            return await self.prepare(recognise_upload, self.recognizer, self.max_pixels, data, top, chosen)
        framed, cues = await self.prepare(examine_upload, data, self.recognizer, self.max_pixels)
        probs = None if framed is None else await self.answer(self.worker.submit(framed))
        return prediction_json(self.recognizer, framed, cues, probs, top, chosen)

    async def read_line(self, request, top: int, charset) -> dict:
        """The answer to ``/api/predict/line``: the text and each character."""
        self.allowed(charset)
        data = await read_upload(request, self.max_bytes, self.read_timeout)
        # The Recognizer's own lock keeps its model calls one at a time.
        result = await self.prepare(read_line_upload, data, self.recognizer, self.max_pixels, top, charset)
        chars = [
            {
                "character": c["character"],
                "probability": float(c["probability"]),
                "box": [int(v) for v in c["box"]],
                "space_before": bool(c.get("space_before", False)),
                "row": int(c.get("row", 0)),
                "unsure": bool(c["unsure"]),
                "top": candidates(c["top"][:top]),
            }
            for c in result["characters"]
        ]
        ignored = [{"box": [int(v) for v in m["box"]], "row": int(m["row"]), "reason": m["reason"]}
                   for m in result["ignored"]]
        return {"text": result["text"], "characters": chars, "ignored": ignored, "reason": result.get("reason")}


def error_responses(max_bytes: int, max_pixels: int) -> dict:
    """The 4xx and 5xx answers of the image endpoints, for the schema."""
    ApiError = schemas()[0]
    return {
        400: {"model": ApiError, "description": "not an image, an empty body, a truncated image, a malformed upload, "
              "or a host name the server does not serve"},
        408: {"model": ApiError, "description": "the body did not arrive in time"},
        413: {"model": ApiError, "description": f"image over {max_bytes} bytes or {max_pixels} pixels"},
        415: {"model": ApiError, "description": "content type is not an image, octet-stream or multipart upload"},
        422: {"model": ApiError, "description": "bad query parameter or charset, no file in the upload, a line with "
              "no ink, or too many separate marks"},
        503: {"model": ApiError, "description": "the server is busy: the image or the model did not finish in time"},
    }


def add_error_handlers(app) -> None:
    """Every error as ``{"error": ...}`` JSON with its status."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

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


def add_image_routes(app, served: Served) -> None:
    """``POST /api/predict`` and ``POST /api/predict/line``."""
    from typing import Annotated

    from fastapi import Depends, Query, Request
    from fastapi.responses import Response

    _, _, Prediction, _, LineReading, _, _ = schemas()
    errors = error_responses(served.max_bytes, served.max_pixels)
    classes = len(served.recognizer.mapping)
    top_doc = f"how many of the most likely characters to return (1-{classes})"
    charset_doc = ("consider only these characters, probabilities renormalised over them: digits, upper, lower, "
                   "letters, alnum, or the characters themselves (e.g. 0123456789ABCDEF); every class when absent")
    Charset = Annotated[str | None, Query(max_length=200, description=charset_doc)]

    known = [Depends(query_names("top", "charset"))]

    @app.post("/api/predict", response_model=Prediction, responses=errors, openapi_extra=image_body_doc(),
              dependencies=known)
    async def predict(request: Request, top: Annotated[int, Query(ge=1, le=classes, description=top_doc)] = min(5, classes),
                      charset: Charset = None):
        """Recognise the one character in an image, or say why it holds none (``character`` null)."""
        return Response(await served.predict(request, top, charset), media_type="application/json")

    @app.post("/api/predict/line", response_model=LineReading, responses=errors, openapi_extra=image_body_doc(),
              dependencies=known)
    async def predict_line(request: Request, top: Annotated[int, Query(ge=1, le=classes, description=top_doc)] = min(3, classes),
                           charset: Charset = None):
        """Read a line of characters written left to right."""
        return await served.read_line(request, top, charset)


def add_info_routes(app, info: dict) -> None:
    """The model's description, the health check and the page."""
    from fastapi.responses import FileResponse

    _, _, _, _, _, ModelInfo, Health = schemas()

    @app.get("/api/model", response_model=ModelInfo)
    async def model_info():
        """The model being served: name, classes, parameter count, test accuracy when known, temperature."""
        return info

    @app.get("/healthz", response_model=Health)
    async def healthz():
        """Answers as long as the server is up and its model loaded."""
        return {"status": "ok", "model": str(info.get("name", ""))}

    @app.get("/", response_class=FileResponse, responses={200: {"content": {"text/html": {}}}})
    async def page():
        """The page to draw or upload characters and see them recognised."""
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def create_app(
    model,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    read_timeout: float = READ_TIMEOUT_S,
    prepare_timeout: float = PREPARE_TIMEOUT_S,
    allowed_hosts=LOOPBACK_HOSTS,
    collect=None,
    min_confidence: float | None = None,
):
    """The FastAPI application serving ``model``: a model file's path or a loaded ``Recognizer``.

    Args:
        model: path to a ``.keras``, ``.h5`` or ``.onnx`` model, or a ``handwritten.predict.Recognizer``.
        max_bytes: largest accepted image file in bytes.
        max_pixels: largest accepted image in pixels (width x height), checked before decoding.
        read_timeout: seconds a client may take to send its body before it gets a 408.
        prepare_timeout: seconds an image may take to be decoded and framed (or its line read,
            the model call included) before the request gets a 503.
        allowed_hosts: the host names requests may be for (their Host header); ``"*"`` allows any.
        collect: a folder to save a person's samples into (``/api/samples``, see ``collect.py``);
            None answers those endpoints with 404 and writes nothing.
        min_confidence: answers below this calibrated probability are marked unsure (default:
            the model's own; a given ``Recognizer`` keeps its own).
    """
    from fastapi import FastAPI
    from starlette.staticfiles import StaticFiles

    from handwritten.runtime import fast_recognizer

    if max_bytes <= 0 or max_pixels <= 0:
        raise HandwrittenError(f"max_bytes and max_pixels must be positive, got {max_bytes} and {max_pixels}")
    recognizer, runtime_note = fast_recognizer(model, max_pixels, min_confidence)
    # onnxruntime is called from the image threads, right after framing: a Keras model, slower
    # per call and not to be called from several threads at once, gets a thread that batches.
    worker = None if recognizer.runs_onnx else ModelWorker(recognizer)
    served = Served(recognizer, worker, ImageWorkers(), max_bytes, max_pixels, read_timeout, prepare_timeout)
    app = FastAPI(
        title="handwritten",
        description="Recognise handwritten characters with a model trained on EMNIST.",
        version=__version__,
        docs_url=None,  # the interactive docs load scripts from outside; the page must work offline
        redoc_url=None,
    )
    app.state.runtime = runtime_note
    app.add_middleware(HostCheck, hosts=list(allowed_hosts))
    app.add_middleware(HeaderLimit, limit=MAX_HEADER_BYTES)  # added last, so it runs first
    add_error_handlers(app)
    add_image_routes(app, served)
    add_info_routes(app, dict(recognizer.info()))
    if collect is not None:
        from handwritten.collect import sample_router

        app.include_router(sample_router(collect, recognizer, max_bytes=max_bytes, max_pixels=max_pixels,
                                         read_timeout=read_timeout))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
