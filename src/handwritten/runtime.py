"""What runs the model behind ``serve``: onnxruntime whenever it can, Keras when it cannot.

For one framed 28x28 image onnxruntime answers in about 0.1 ms where a Keras call costs about
a millisecond and holds a lock, so a server given a Keras file converts it to ONNX once
(``handwritten.export``, checked against Keras on a batch of images before it is used) and keeps
the result in ``$HANDWRITTEN_CACHE/onnx/``, named by the SHA-256 of the model file: a changed
file gets a new conversion, an unchanged one starts in a second. When the conversion fails the
server runs the Keras model as before, and says so when it starts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from handwritten.errors import HandwrittenError


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def session(path: str | os.PathLike):
    """An onnxruntime session for small batches on a server: one thread per call, none left spinning.

    The server runs calls from several threads at once; onnxruntime's own pool on top of them
    would only contend for the same cores, and its idle threads would spin on them.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cached_onnx(recognizer) -> Path:
    """The ONNX conversion of a Recognizer's Keras model, made (and checked) once per model file.

    Raises:
        HandwrittenError: the conversion failed or its probabilities differ from Keras's.
    """
    from handwritten import export
    from handwritten.idx import cache_dir

    folder = cache_dir() / "onnx"
    out = folder / f"{file_hash(recognizer.path)}.onnx"
    if out.is_file():
        return out
    folder.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        export.to_onnx(recognizer._model, recognizer.meta, tmp)
        x = export._check_images(len(recognizer.mapping))
        diff = export.check_onnx(tmp, recognizer._model, x)
        if not diff <= export.TOLERANCE:
            raise HandwrittenError(f"the ONNX conversion differs from Keras by {diff:.2g} (more than {export.TOLERANCE:g})")
        os.replace(tmp, out)  # whole or not at all, also when two servers convert at once
    finally:
        if tmp.exists():
            tmp.unlink()
    return out


def fast_recognizer(model, max_pixels: int, min_confidence: float | None = None):
    """A Recognizer for ``model`` (a path or a Recognizer) running in onnxruntime where possible.

    A path is loaded with ``min_confidence`` (None: the model's own); a Recognizer keeps its own.
    The temperature applies either way: ``Recognizer.predict_arrays`` scales whatever runs the model.

    Returns:
        ``(recognizer, note)``: ``note`` says what runs the model, for the server's first log line.
    """
    from handwritten.predict import Recognizer

    recognizer = model if isinstance(model, Recognizer) else Recognizer(model, max_pixels=max_pixels,
                                                                          min_confidence=min_confidence)
    if recognizer.path.suffix.lower() == ".onnx":
        recognizer.use_onnx(session(recognizer.path))
        return recognizer, f"model {recognizer.path.name} runs in onnxruntime"
    if recognizer.runs_onnx:  # converted already, for another server
        return recognizer, f"model {recognizer.path.name} runs in onnxruntime (converted from Keras)"
    try:
        onnx_path = cached_onnx(recognizer)
        recognizer.use_onnx(session(onnx_path))
    except Exception as exc:  # any failure of the conversion leaves the Keras model running, as before
        return recognizer, (f"model {recognizer.path.name} runs in Keras (the fallback): its ONNX conversion "
                            f"failed ({type(exc).__name__}: {exc})")
    return recognizer, f"model {recognizer.path.name} runs in onnxruntime (converted once, cached as {onnx_path})"
