"""``handwritten evaluate``: how good a model is on a data set's test part, and where it goes wrong.

Prints accuracy, top-3 accuracy, case-insensitive accuracy (for models with upper and lower
case: byclass confuses c/C, o/O, s/S ... by design), the worst classes and the most-confused
pairs, and how well the probabilities are calibrated (the expected calibration error, 15 bins,
with the model's stored temperature and without it); ``--json`` prints them as one object; ``--report DIR`` adds plots and one HTML page
(``handwritten.report``). Keras and ONNX models are both accepted.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from handwritten import calibration, emnist, paths
from handwritten.errors import HandwrittenError
from handwritten.limits import MAX_BATCH, check_number
from handwritten.paths import folder_problem


def _has_both_cases(mapping: str) -> bool:
    return any(c.isupper() for c in mapping) and any(c.islower() for c in mapping)


def _load_data(data, split: str | None, meta: dict, model_path) -> emnist.Dataset:
    """The data set to judge on, in the model's split when the folder has it; refused if the classes differ."""
    from handwritten import folder_data, teach

    if split is None and folder_data.is_image_folder(data):  # images framed as this model frames them
        return folder_data.load(data, split=teach.split_of(meta), framing=meta.get("framing"))
    dataset = emnist.load(data, split)
    wanted = meta.get("split")
    if split is None and dataset.transposed and wanted in emnist.SPLITS and wanted != dataset.split.name:
        try:
            dataset = emnist.load(data, wanted)
        except HandwrittenError:
            pass  # the folder lacks the model's split; the class check below explains
    classes = len(meta["mapping"])
    if dataset.classes != classes:
        raise HandwrittenError(
            f"{dataset.folder}: the data has {dataset.classes} classes (split {dataset.split.name}) but model "
            f"{model_path} has {classes} (split {wanted}); evaluate on data with the model's classes (--split)"
        )
    return dataset


def metrics(probs: np.ndarray, labels: np.ndarray, mapping: str, worst: int = 5, pairs: int = 10) -> dict:
    """Accuracy, top-3, per-class accuracy, worst classes, most-confused pairs and the confusion matrix.

    Args:
        probs: class probabilities ``(N, classes)``.
        labels: true classes ``(N,)``.
        mapping: ``mapping[k]`` is the character of class k.
    """
    labels = np.asarray(labels, dtype=np.int64)
    classes = len(mapping)
    predicted = probs.argmax(axis=1)
    top3 = np.argsort(-probs, axis=1)[:, :3]
    confusion = np.bincount(labels * classes + predicted, minlength=classes * classes).reshape(classes, classes)
    counts, correct = confusion.sum(axis=1), np.diag(confusion)
    per_class = {
        mapping[k]: {"count": int(counts[k]), "correct": int(correct[k]),
                     "accuracy": float(correct[k] / counts[k]) if counts[k] else None}
        for k in range(classes)
    }
    present = [k for k in range(classes) if counts[k]]
    worst_k = sorted(present, key=lambda k: (correct[k] / counts[k], -counts[k]))[:worst]
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None)[:pairs]
    out = {
        "images": int(len(labels)),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "top3_accuracy": float((top3 == labels[:, None]).any(axis=1).mean()) if len(labels) else 0.0,
        "per_class": per_class,
        "worst_classes": [{"character": mapping[k], "accuracy": float(correct[k] / counts[k]), "count": int(counts[k])}
                          for k in worst_k],
        "confused_pairs": [{"true": mapping[i // classes], "predicted": mapping[i % classes], "count": int(off.flat[i])}
                           for i in flat if off.flat[i] > 0],
        "confusion_matrix": confusion.tolist(),
    }
    if _has_both_cases(mapping):
        lower = np.array([ord(c.lower()) for c in mapping])
        folded = lower[predicted] == lower[labels]
        out["case_insensitive_accuracy"] = float(folded.mean()) if len(labels) else 0.0
        errors = int((predicted != labels).sum())
        out["case_only_error_share"] = float((folded & (predicted != labels)).sum() / errors) if errors else 0.0
    return out


def evaluate(model, data=None, split: str | None = None, batch_size: int = 256) -> tuple[dict, dict]:
    """Judge ``model`` (a path or a ``Recognizer``) on the test part of ``data``.

    Returns:
        ``(summary, extra)``: the JSON-able summary (see :func:`metrics`, plus model, data and
        speed) and, for the report, the test images, labels, probabilities and the model's metadata.
    """
    from handwritten.predict import Recognizer

    recognizer = model if isinstance(model, Recognizer) else Recognizer(model)
    dataset = _load_data(data, split, recognizer.meta, recognizer.path)
    x, y = np.asarray(dataset.x_test), np.asarray(dataset.y_test)
    if len(x) == 0:
        raise HandwrittenError(f"{dataset.folder}: the test part has no images")
    start = time.perf_counter()
    raw = recognizer.predict_arrays(x, batch_size=batch_size, calibrated=False)
    seconds = time.perf_counter() - start
    probs = calibration.apply_temperature(raw, recognizer.temperature)
    summary = metrics(probs, y, recognizer.mapping)
    summary.update(
        temperature=recognizer.temperature,
        calibration_error=calibration.expected_calibration_error(probs, y),
        calibration_error_uncalibrated=calibration.expected_calibration_error(raw, y),
        confident=calibration.kept_at(probs, y, recognizer.min_confidence),
    )
    if recognizer.mapping != dataset.mapping:
        summary["warning"] = f"the model's characters {recognizer.mapping!r} differ from the data's {dataset.mapping!r}"
    summary.update(
        model=str(recognizer.path),
        model_name=recognizer.info()["name"],
        format=recognizer.info()["format"],
        data=str(dataset.folder),
        split=dataset.split.name,
        synthetic=dataset.synthetic,
        seconds=round(seconds, 3),
        images_per_second=round(len(x) / seconds, 1) if seconds > 0 else None,
    )
    return summary, {"x": x, "y": y, "probs": probs, "raw_probs": raw, "meta": recognizer.meta,
                     "mapping": recognizer.mapping}


def _print(summary: dict) -> None:
    kind = "synthetic offline sample, NOT an EMNIST result" if summary["synthetic"] else f"split {summary['split']}"
    print(f"model: {summary['model']} ({summary['model_name']}, {summary['format']})")
    print(f"data: {summary['data']} ({kind}), {summary['images']} test images")
    print(f"accuracy:        {summary['accuracy']:.2%}")
    print(f"top-3 accuracy:  {summary['top3_accuracy']:.2%}")
    if "case_insensitive_accuracy" in summary:
        print(f"ignoring case:   {summary['case_insensitive_accuracy']:.2%} "
              f"({summary['case_only_error_share']:.0%} of the errors are upper/lower case only)")
    print("worst classes:   " + ", ".join(f"{w['character']} {w['accuracy']:.0%} (of {w['count']})" for w in summary["worst_classes"]))
    print("most confused:   " + (", ".join(f"{p['true']}->{p['predicted']} {p['count']}x" for p in summary["confused_pairs"][:8]) or "none"))
    print(f"calibration:     error {summary['calibration_error']:.4f} with temperature {summary['temperature']:.3f}, "
          f"{summary['calibration_error_uncalibrated']:.4f} without (expected calibration error, 15 bins)")
    kept = summary["confident"]
    if kept["accuracy_kept"] is not None:
        print(f"sure answers:    {kept['kept']:.1%} at probability >= {kept['min_confidence']:g}, "
              f"{kept['accuracy_kept']:.2%} of them right")
    print(f"speed:           {summary['images_per_second']} images/s")
    if "warning" in summary:
        print(f"warning: {summary['warning']}")


def run_evaluate(args) -> int:
    check_number("--batch-size", args.batch_size, 1, MAX_BATCH, integer=True)
    if args.report and os.path.lexists(args.report):  # before the evaluation, not after it
        if problem := folder_problem(args.report, "report folder"):
            raise HandwrittenError(f"{args.report}: {problem}")
        from handwritten.report import check_folder

        check_folder(args.report)
    summary, extra = evaluate(args.model, args.data, args.split, batch_size=args.batch_size)
    if args.report:
        from handwritten.report import write_report

        summary["report"] = str(write_report(args.report, summary, extra))
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
        if args.report:
            print(f"report: {summary['report']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="measure a model's accuracy on a data set's test part, optionally with a report",
                       description="Accuracy, top-3 accuracy, case-insensitive accuracy, worst classes and most-confused "
                       "pairs on the test part of a data set; --report writes plots and one self-contained HTML page.")
    p.add_argument("model", type=paths.argument, help="model file (.keras, .h5 or .onnx)")
    p.add_argument("--data", default=None, type=paths.argument, help="data folder (default: %(default)s, meaning ./emnist, then the user cache)")
    p.add_argument("--split", default=None, help="EMNIST split (default: %(default)s, meaning the model's split)")
    p.add_argument("--report", default=None, metavar="DIR", type=paths.argument, help="write PNG plots and report.html here (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=256, help="images per inference batch (default: %(default)s)")
    p.set_defaults(run=run_evaluate)
