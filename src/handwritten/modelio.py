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
import os
import zipfile
from pathlib import Path

from handwritten.emnist import SPLITS
from handwritten.errors import HandwrittenError

META_KEY = "handwritten"
META_MEMBER = "handwritten.json"
FORMATS = (".h5", ".keras")

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
    path = Path(path)
    if path.suffix not in FORMATS:
        raise HandwrittenError(f"{path}: a model file must end in {' or '.join(FORMATS)}, not {path.suffix or 'nothing'!r}")
    if for_writing:
        if not path.parent.exists():
            raise HandwrittenError(f"{path}: folder {path.parent} does not exist")
        if not path.parent.is_dir():
            raise HandwrittenError(f"{path}: {path.parent} is a file, not a folder")
        if path.is_dir():
            raise HandwrittenError(f"{path}: is a folder; give the name of a model file to write")
    elif not path.is_file():
        raise HandwrittenError(f"{path}: model file not found")
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
                    text = z.read(META_MEMBER).decode()
    except (OSError, zipfile.BadZipFile) as exc:
        raise HandwrittenError(f"{path}: not a readable model file ({exc})") from None
    if text is None:
        return dict(LEGACY_META)
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text)


def load_model(path: str | os.PathLike, *, compile: bool = True):
    """Load a model file; returns ``(model, meta)``.

    Raises:
        HandwrittenError: the file is missing, has the wrong extension, or is not a Keras model.
    """
    meta = read_meta(path)
    import keras

    try:
        model = keras.models.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same here.
        raise HandwrittenError(f"{path}: not a loadable Keras model ({type(exc).__name__}: {exc})") from None
    classes = model.output_shape[-1]
    if classes != len(meta["mapping"]):
        if meta.get("legacy"):
            raise HandwrittenError(
                f"{path}: has {classes} outputs and no metadata; only the original script's 62-class byclass models "
                "can be read without it"
            )
        raise HandwrittenError(f"{path}: has {classes} outputs but its metadata names {len(meta['mapping'])} classes")
    return model, meta
