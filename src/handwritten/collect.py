"""Collecting a person's own samples: ``handwritten serve MODEL --collect DIR``.

Each sample is written into ``DIR`` in the layout ``handwritten.folder_data`` reads, one
sub-folder per character (``7/``, ``upper-A/``, ``lower-a/``), so ``handwritten finetune
--data DIR`` continues training on it. Files are written under a temporary name and linked
into place, so a sample is never half-written and never replaces another. The server only
collects; training is the ``finetune`` command's job (``GET /api/samples`` names it).

    POST   /api/samples        multipart: the image in field 'file', the character in 'label'
    GET    /api/samples        per-character counts and the command that trains on them
    DELETE /api/samples/last   remove the last sample this server saved
"""

# No "from __future__ import annotations": FastAPI reads the endpoints' annotations at run time.
import os
import threading
import time
from pathlib import Path

from handwritten import folder_data
from handwritten.errors import HandwrittenError
from handwritten.paths import folder_problem

EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "MPO": ".jpg", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif",
              "WEBP": ".webp", "PPM": ".ppm"}


class SampleStore:
    """A folder of samples by character, written atomically, never overwriting, with an undo."""

    def __init__(self, folder, mapping: str):
        self.folder = Path(folder)
        self.mapping = mapping
        problem = folder_problem(self.folder, "folder") if os.path.lexists(self.folder) else None
        if problem:
            raise HandwrittenError(f"--collect {self.folder}: {problem}")
        if not self.folder.exists():
            if not self.folder.parent.is_dir():
                raise HandwrittenError(f"--collect {self.folder}: folder {self.folder.parent} does not exist")
            self.folder.mkdir()
        self.saved: list[tuple[str, Path]] = []  # this server's samples, newest last, for undo
        self._lock = threading.Lock()

    def check_label(self, label) -> str:
        if not isinstance(label, str) or len(label) != 1 or label not in self.mapping:
            shown = label if isinstance(label, str) and len(label) <= 20 else f"{str(label)[:20]}..."
            raise HandwrittenError(f"label {shown!r}: must be one character of the model's classes, "
                                   f"one of {self.mapping!r}")
        return label

    def save(self, label: str, data: bytes, extension: str) -> Path:
        """Write one sample of ``label``; returns its path, a name no other file had."""
        label = self.check_label(label)
        folder = self.folder / folder_data.class_name(label)
        folder.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        tmp = folder / f".incoming-{os.getpid()}-{threading.get_ident()}{extension}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            with self._lock:
                for n in range(1, 100_000):
                    path = folder / f"{stamp}-{n:03d}{extension}"
                    try:
                        os.link(tmp, path)  # fails if the name is taken: nothing is ever replaced
                    except FileExistsError:
                        continue
                    except OSError:  # a file system without hard links
                        if os.path.lexists(path):
                            continue
                        os.rename(tmp, path)
                    self.saved.append((label, path))
                    return path
        finally:
            tmp.unlink(missing_ok=True)
        raise HandwrittenError(f"{folder}: no free file name for {stamp}")

    def undo(self) -> tuple[str, Path]:
        """Remove the last sample this store saved; returns its label and path."""
        with self._lock:
            if not self.saved:
                raise LookupError("no sample saved by this server to undo")
            label, path = self.saved.pop()
            path.unlink(missing_ok=True)
        return label, path

    def counts(self) -> dict[str, int]:
        """Image files per character of the mapping, as ``finetune`` will find them."""
        counts = dict.fromkeys(self.mapping, 0)
        for sub in self.folder.iterdir():
            ch = folder_data.character_of(sub.name, self.mapping) if sub.is_dir() else None
            if ch is not None:
                counts[ch] += sum(1 for p in sub.iterdir() if not p.name.startswith(".")
                                  and p.suffix.lower() in folder_data.EXTENSIONS)
        return counts


def finetune_command(model_path: Path, folder: Path) -> str:
    """The command that continues training the served model on the collected samples."""
    import shlex

    if model_path.suffix.lower() == ".onnx":
        return (f"handwritten finetune --model MODEL.keras --data {shlex.quote(str(folder))} --out MODEL-mine.keras "
                f"(with the .keras or .h5 model {model_path.name} was exported from)")
    out = model_path.with_name(f"{model_path.stem}-mine{model_path.suffix}")
    return (f"handwritten finetune --model {shlex.quote(str(model_path))} --data {shlex.quote(str(folder))} "
            f"--out {shlex.quote(str(out))}")


async def read_sample(request, max_bytes: int, timeout: float) -> tuple[bytes, str]:
    """The image and label of a multipart upload, its size capped as ``/api/predict``'s."""
    from starlette.datastructures import UploadFile

    from handwritten.uploads import MULTIPART_SLACK, RequestError, parse_form, read_body

    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "multipart/form-data":
        raise RequestError(415, f"content type {media!r} is not accepted: send a multipart/form-data upload "
                                "with the image in field 'file' and the character in field 'label'")
    body = await read_body(request, max_bytes + MULTIPART_SLACK, max_bytes, timeout)
    form = await parse_form(request.scope, body, max_files=1, max_fields=4)
    try:
        upload, label = form.get("file"), form.get("label")
        if not isinstance(upload, UploadFile):
            raise RequestError(422, "multipart body has no file: send the image in field 'file'")
        if not isinstance(label, str):
            raise RequestError(422, "multipart body has no label: send the character in field 'label'")
        data = await upload.read()
    finally:
        await form.close()
    if not data:
        raise RequestError(400, "empty file: send an image (PNG, JPEG, ...) in field 'file'")
    if len(data) > max_bytes:
        raise RequestError(413, f"image too large: {len(data)} bytes; the limit is {max_bytes} bytes")
    return data, label


def sample_router(folder, recognizer, *, max_bytes: int, max_pixels: int, read_timeout: float):
    """The ``/api/samples`` endpoints, writing into ``folder`` for ``recognizer``'s classes."""
    from fastapi import APIRouter, Request
    from starlette.concurrency import run_in_threadpool

    from handwritten.uploads import RequestError, frame_upload_as

    store = SampleStore(folder, recognizer.mapping)
    command = finetune_command(Path(recognizer.path), store.folder)
    router = APIRouter()

    def state() -> dict:
        counts = store.counts()
        return {"folder": str(store.folder), "counts": counts, "total": sum(counts.values()), "command": command}

    def check_and_save(data: bytes, label: str) -> Path:
        _, kind = frame_upload_as(data, recognizer, max_pixels)  # a blank drawing would only be skipped later
        return store.save(label, data, EXTENSIONS.get(kind, ".png"))

    @router.post("/api/samples", status_code=201)
    async def add_sample(request: Request):
        """Save one sample: the image in multipart field 'file', its character in field 'label'."""
        data, label = await read_sample(request, max_bytes, read_timeout)
        try:
            store.check_label(label)
            path = await run_in_threadpool(check_and_save, data, label)
        except RequestError:
            raise
        except HandwrittenError as exc:
            raise RequestError(422, str(exc)) from None
        except OSError as exc:  # the folder went away, or a file took a class folder's name
            raise RequestError(500, f"{store.folder}: the sample could not be written ({exc})") from None
        return {"saved": str(path), "label": label, **state()}

    @router.get("/api/samples")
    async def samples():
        """Samples per character in the collect folder, and the command that trains on them."""
        return state()

    @router.delete("/api/samples/last")
    async def undo_last():
        """Remove the last sample this server saved."""
        try:
            label, path = store.undo()
        except LookupError as exc:
            raise RequestError(404, str(exc)) from None
        return {"removed": str(path), "label": label, **state()}

    return router
