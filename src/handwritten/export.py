"""``handwritten export``: a model that runs without this package, as ONNX or a TensorFlow SavedModel.

ONNX goes through tf2onnx (the Keras model traced as a ``tf.function``); the model's metadata
(characters, framing, orientation, name ...) travels in the file's ``metadata_props``: all of
it as JSON under ``handwritten``, and the main fields one by one for other tools. Every export
is checked: onnxruntime and Keras must agree on a batch of images before the file is kept.

The exported network takes float32 ``(N, 28, 28, 1)`` images in [0, 1], framed as
``handwritten.images.preprocess`` frames them, and returns softmax probabilities ``(N, classes)``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from handwritten import paths
from handwritten.errors import HandwrittenError

FORMATS = ("onnx", "savedmodel")
OPSET = 17  # supported by every onnxruntime of the last three years
INPUT_NAME, OUTPUT_NAME = "image", "probabilities"
TOLERANCE = 1e-4  # largest difference in any probability between the exported model and Keras
# What a SavedModel folder written by this command holds; a folder with anything else is not ours to replace.
SAVEDMODEL_ENTRIES = {"saved_model.pb", "variables", "assets", "fingerprint.pb", "handwritten.json"}


def _check_images(classes: int, seed: int = 0) -> np.ndarray:
    """Images for the self-check: blank, full and random strokes-like noise, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    x = rng.random((32, 28, 28, 1), dtype=np.float32) ** 4  # mostly dark, some bright, like ink on black
    x[0], x[1] = 0.0, 1.0
    return x


def _rename(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if o == old else o for o in node.output]
        node.input[:] = [new if i == old else i for i in node.input]
    for value in graph.output:
        if value.name == old:
            value.name = new


def to_onnx(model, meta: dict, out: Path) -> None:
    """Convert a Keras model with tf2onnx and store ``meta`` in the file's metadata_props."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name=INPUT_NAME),)

    @tf.function(input_signature=spec)
    def forward(x):
        return model(x, training=False)

    try:
        proto, _ = tf2onnx.convert.from_function(forward, input_signature=spec, opset=OPSET)
    except Exception as exc:  # tf2onnx raises many kinds; all mean the conversion failed
        raise HandwrittenError(f"ONNX conversion failed ({type(exc).__name__}: {exc})") from None
    _rename(proto.graph, proto.graph.output[0].name, OUTPUT_NAME)
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    props = {
        "handwritten": json.dumps(meta),
        "model_name": str(meta.get("model_name", "")),
        "mapping": meta["mapping"],
        "orientation": meta.get("orientation", "upright"),
        "framing": json.dumps(meta.get("framing")),
        "input": "float32 (N, 28, 28, 1) in [0, 1], ink bright on dark",
    }
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "handwritten"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))


def check_onnx(path: Path, model, x: np.ndarray) -> float:
    """The largest probability difference between onnxruntime on ``path`` and Keras on ``x``."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = session.run(None, {session.get_inputs()[0].name: x})[0]
    theirs = np.asarray(model(x, training=False))
    return float(np.abs(ours - theirs).max())


def to_savedmodel(model, meta: dict, out: Path) -> None:
    """A TensorFlow SavedModel folder (``serve`` signature) with the metadata as ``handwritten.json`` beside it."""
    model.export(str(out), format="tf_saved_model", verbose=False)
    (out / "handwritten.json").write_text(json.dumps(meta))


def check_savedmodel(path: Path, model, x: np.ndarray) -> float:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    ours = np.asarray(loaded.serve(tf.constant(x)))
    return float(np.abs(ours - np.asarray(model(x, training=False))).max())


def _check_out(out: Path, fmt: str) -> None:
    """Refuse an ``out`` whose replacement would delete something this command did not write."""
    if out.is_symlink():
        raise HandwrittenError(f"{out}: is a symbolic link; give the path of a new file or folder")
    if fmt == "onnx" and out.is_dir():
        raise HandwrittenError(f"{out}: is a folder; an ONNX model is a file, so give a new file name")
    if fmt == "onnx" and out.exists():
        from handwritten.predict import read_onnx_meta

        try:
            read_onnx_meta(out)
        except HandwrittenError:
            raise HandwrittenError(f"{out}: exists and is not an ONNX model written by 'handwritten export'; "
                                   "nothing was changed; give a new file name") from None
    if fmt == "savedmodel" and out.is_dir():
        entries = {p.name for p in out.iterdir()}
        ours = not entries or ({"saved_model.pb", "handwritten.json"} <= entries <= SAVEDMODEL_ENTRIES)
        if not ours:
            others = sorted(entries - SAVEDMODEL_ENTRIES)[:5]
            found = f"it holds {', '.join(others)}" if others else "no saved_model.pb and handwritten.json"
            raise HandwrittenError(f"{out}: is a folder that is not a SavedModel written by 'handwritten export' "
                                   f"({found}); nothing was changed; give a new folder name")


def _move_into_place(tmp: Path, out: Path) -> None:
    """Move the finished export to ``out``; an earlier export there is set aside first and removed last."""
    if not out.is_dir():
        os.replace(tmp, out)  # a file, or nothing: one atomic rename
        return
    old = out.with_name(f".{out.name}.old{os.getpid()}")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def export(model_path, fmt: str, out) -> dict:
    """Export a ``.keras``/``.h5`` model as ``fmt`` (``"onnx"`` or ``"savedmodel"``) to ``out``, checked.

    The file is written beside ``out`` under a temporary name and moved into place only after
    the exported model's probabilities agree with Keras within ``TOLERANCE``. An existing
    ``out`` is replaced only if it is an ONNX file or a SavedModel folder this command wrote.

    Returns:
        ``{"model", "format", "out", "max_difference"}``.
    """
    from handwritten.modelio import load_model

    if fmt not in FORMATS:
        raise HandwrittenError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if Path(model_path).suffix.lower() == ".onnx":
        raise HandwrittenError(f"{model_path}: already ONNX; export reads a .keras or .h5 model")
    out = Path(out)
    if fmt == "onnx" and out.suffix != ".onnx":
        raise HandwrittenError(f"{out}: an ONNX model file must end in .onnx")
    if not out.parent.is_dir():
        raise HandwrittenError(f"{out}: folder {out.parent} does not exist")
    if fmt == "savedmodel" and out.exists() and not out.is_dir():
        raise HandwrittenError(f"{out}: exists and is not a folder; a SavedModel is a folder")
    _check_out(out, fmt)
    model, meta = load_model(model_path, compile=False)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        x = _check_images(model.output_shape[-1])
        if fmt == "onnx":
            to_onnx(model, meta, tmp)
            diff = check_onnx(tmp, model, x)
        else:
            to_savedmodel(model, meta, tmp)
            diff = check_savedmodel(tmp, model, x)
        if not diff <= TOLERANCE:
            raise HandwrittenError(f"{out}: the exported model differs from Keras by {diff:.2g} (more than {TOLERANCE:g}); not written")
        _check_out(out, fmt)  # again: the export took a while, and what is there may have changed
        _move_into_place(tmp, out)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
    return {"model": str(model_path), "format": fmt, "out": str(out), "max_difference": diff}


def run_export(args) -> int:
    result = export(args.model, args.format, args.out)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"wrote {result['out']} ({result['format']}); largest difference from Keras on the check images: "
              f"{result['max_difference']:.1e}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="export a model as ONNX or a TensorFlow SavedModel",
                       description="Write a model that runs without this package. The export is checked against "
                       "Keras before it is kept. ONNX files carry the characters and framing in their metadata; "
                       "'handwritten predict' and 'evaluate' accept them (run by onnxruntime).")
    p.add_argument("model", type=paths.argument, help="model file (.keras or .h5)")
    p.add_argument("--format", choices=FORMATS, default="onnx", help="what to write (default: %(default)s)")
    p.add_argument("--out", required=True, type=paths.argument, help="output: a .onnx file, or a folder for savedmodel (required)")
    p.add_argument("--json", action="store_true", help="print one JSON object (default: %(default)s)")
    p.set_defaults(run=run_export)
