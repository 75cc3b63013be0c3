"""Save and load models with what they need to be used: classes, orientation, framing, history.

A model file is self-contained. The metadata travels inside it: as an HDF5 attribute in a
``.h5`` file (the original script's format) and as a ``handwritten.json`` member of a
``.keras`` archive. Keras ignores both, so ``keras.models.load_model`` still opens the file.

Files are written to a temporary name in the target's folder and renamed over the target,
so a crash never leaves a half-written model where a good one was.

A ``.h5`` saved by the original Keras 2 script has no metadata; it is read as a 62-class
byclass model that expects EMNIST's transposed images.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

from handwritten.emnist import IMAGE_SIZE, SPLITS
from handwritten.errors import HandwrittenError
from handwritten.framing import framing_from_meta
from handwritten.paths import check_file, check_given

META_KEY = "handwritten"
META_MEMBER = "handwritten.json"
FORMATS = (".h5", ".keras")
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)  # what a model is fed, after the batch dimension
ORIENTATIONS = ("upright", "transposed")

# What a model file without metadata (the original script's) is taken to be.
LEGACY_META = {
    "format": 1,
    "model_name": "legacy",
    "split": "byclass",
    "mapping": SPLITS["byclass"].mapping,
    "orientation": "transposed",  # trained on EMNIST's files as stored
    "framing": "bbox",  # EMNIST's framing: bounding box, 2 px padding
    "history": {},
    "legacy": True,
}


def check_model_path(path: str | os.PathLike, *, for_writing: bool = False) -> Path:
    """Check a model path's extension (and, for reading, that it exists)."""
    check_given(path, "a model file (.keras or .h5)", HandwrittenError)
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        doing = "written by training" if for_writing else "trained further or exported"
        raise HandwrittenError(f"{path}: an ONNX model cannot be {doing} (only predict and serve run one); "
                               f"use the .keras or .h5 file it was exported from")
    if path.suffix not in FORMATS:
        raise HandwrittenError(f"{path}: a model file must end in {' or '.join(FORMATS)}, not {path.suffix or 'nothing'!r}")
    if for_writing:
        if not path.parent.exists():
            raise HandwrittenError(f"{path}: folder {path.parent} does not exist")
        if not path.parent.is_dir():
            raise HandwrittenError(f"{path}: {path.parent} is a file, not a folder")
        if path.is_dir():
            raise HandwrittenError(f"{path}: is a folder; give the name of a model file to write")
    else:
        check_file(path, "model file", HandwrittenError)
    return path


def save_model(model, path: str | os.PathLike, meta: dict) -> Path:
    """Save ``model`` and ``meta`` to ``path`` (``.h5`` or ``.keras``) atomically."""
    path = check_model_path(path, for_writing=True)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    try:
        if path.suffix == ".h5":
            # Keras calls .h5 legacy on every save; it is the original script's format, chosen on purpose.
            import logging

            absl = logging.getLogger("absl")
            level = absl.level
            absl.setLevel(logging.ERROR)
            try:
                model.save(tmp)
            finally:
                absl.setLevel(level)
        else:
            model.save(tmp)
        text = json.dumps(meta)
        if path.suffix == ".h5":
            import h5py

            with h5py.File(tmp, "a") as f:
                f.attrs[META_KEY] = text
        else:
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(META_MEMBER, text)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_meta(path: str | os.PathLike) -> dict:
    """The metadata stored in a model file; the legacy defaults for a file that has none."""
    path = check_model_path(path)
    text = None
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get(META_KEY)
        else:
            with zipfile.ZipFile(path) as z:
                if META_MEMBER in z.namelist():
                    text = z.read(META_MEMBER)
    except (OSError, zipfile.BadZipFile) as exc:
        raise HandwrittenError(f"{path}: not a readable model file ({exc})") from None
    if text is None:
        return dict(LEGACY_META)
    return parse_meta(text, path)


def parse_meta(text: str | bytes, source: str | os.PathLike) -> dict:
    """A model's metadata from its JSON text, checked; ``source`` (the file) names it in errors.

    The one place metadata is validated, for ``.h5``, ``.keras`` and ``.onnx`` files alike, so
    that what predict, evaluate, finetune, export and serve read from it can be trusted.
    """
    if not isinstance(text, (str, bytes)):
        raise HandwrittenError(f"{source}: its {META_KEY} metadata is not text but {type(text).__name__}")
    try:
        meta = json.loads(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise HandwrittenError(f"{source}: its {META_KEY} metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise HandwrittenError(f"{source}: its {META_KEY} metadata is a JSON {type(meta).__name__}, not an object")
    problem = _meta_problem(meta)
    if problem:
        raise HandwrittenError(f"{source}: metadata field {problem}")
    return meta


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with a metadata dict, starting with the field's name; None when nothing is."""
    if "mapping" not in meta:
        return "'mapping' is missing (the character of each class)"
    mapping = meta["mapping"]
    if not isinstance(mapping, str) or not mapping:
        return f"'mapping' must be a non-empty string of characters, got {json.dumps(mapping)[:60]}"
    if len(set(mapping)) != len(mapping):
        twice = sorted({c for c in mapping if mapping.count(c) > 1})
        return f"'mapping' names a character more than once: {''.join(twice)!r}"
    if meta.get("orientation", "upright") not in ORIENTATIONS:
        return f"'orientation' must be one of {', '.join(ORIENTATIONS)}, got {json.dumps(meta['orientation'])[:60]}"
    for key in ("model_name", "split"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return f"{key!r} must be a string, got {json.dumps(meta[key])[:60]}"
    for key, ok, want in (("temperature", lambda v: math.isfinite(v) and v > 0, "a positive finite number"),
                          ("min_confidence", lambda v: 0.0 <= v <= 1.0, "a probability between 0 and 1")):
        value = meta.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value)):
            return f"{key!r} must be {want}, got {json.dumps(value)[:60]}"
    history = meta.get("history")
    if history is not None and not isinstance(history, dict) and not (
            isinstance(history, list) and all(isinstance(h, dict) for h in history)):
        return "'history' must be an object or a list of objects, one per epoch"
    try:
        framing_from_meta(meta)
    except ValueError as exc:
        return f"'framing': {exc}"
    return None


def _check_shapes(path, model) -> None:
    """Refuse a model that does not take (N, 28, 28, 1) images and give (N, classes) scores."""
    found = model.input_shape
    if not (isinstance(found, tuple) and tuple(found[1:]) == INPUT_SHAPE):
        raise HandwrittenError(f"{path}: the model takes input of shape {show_shape(found)}; expected "
                               f"{show_shape((None, *INPUT_SHAPE))}, {IMAGE_SIZE}x{IMAGE_SIZE} grey images")
    found = model.output_shape
    if not (isinstance(found, tuple) and len(found) == 2 and isinstance(found[1], int)):
        raise HandwrittenError(f"{path}: the model gives output of shape {show_shape(found)}; expected "
                               "(N, classes), one score per class")


def show_shape(shape) -> str:
    """A shape as messages show it, N for an unknown (batch) dimension; several inputs joined by 'and'."""
    if isinstance(shape, list):
        return " and ".join(show_shape(s) for s in shape)
    return "(" + ", ".join("N" if d is None or isinstance(d, str) else str(d) for d in shape) + ")"


def load_model(path: str | os.PathLike, *, compile: bool = True):
    """Load a model file; returns ``(model, meta)``.

    Raises:
        HandwrittenError: the file is missing, has the wrong extension, is not a Keras model, does
            not take 28x28x1 images, or its metadata is unusable.
    """
    meta = read_meta(path)
    import keras

    try:
        model = keras.models.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same here.
        raise HandwrittenError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {exc})") from None
    _check_shapes(path, model)
    classes = model.output_shape[-1]
    if classes != len(meta["mapping"]):
        if meta.get("legacy"):
            raise HandwrittenError(
                f"{path}: has {classes} outputs and no metadata; only the original script's 62-class byclass models "
                "can be read without it"
            )
        raise HandwrittenError(f"{path}: has {classes} outputs but its metadata names {len(meta['mapping'])} classes")
    return model, meta
