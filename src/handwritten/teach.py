"""Teach a model a person's handwriting: ``handwritten finetune --model M --data DIR [--replay DATA]``.

``DIR`` is a folder of the person's samples (``handwritten.folder_data``; ``serve --collect``
writes one). A few samples a character are too few to train on alone: the model would learn
them and forget the rest. So each epoch mixes the samples, repeated and augmented, with a
replay of the model's original training data (``--replay``, else the data folder its
metadata names when it still exists), and the model keeps its classes even when the samples
cover only some of them. Part of the samples is held out, and the report gives accuracy on
them and on the original test set before and after, the second being what was forgotten.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from handwritten import emnist, folder_data, lock, modelio
from handwritten.errors import DataError, HandwrittenError

# Fine-tuning settings for a person's samples, chosen with benchmarks/bench_teach.py (a model_2 at
# 94.7% on the sample, a new writer at 53%): rate 1e-3 with 6x replay took the writer to 93-94% and
# lost 0.0-0.4 points (seeds 0-2); rate 5e-4 learnt 2-3 points less; 3x replay lost 0.8-1.4 points.
TEACH = dict(epochs=4, learning_rate=1e-3, warmup=0.0, weight_decay=0.0, validation=0.0, patience=0, augment=True)
SAMPLE_IMAGES = 2000  # the samples are repeated until an epoch holds about this many of them
REPLAY_RATIO = 6.0  # original training images per sample image in an epoch: 3 lost 0.8 points, 6 lost 0.2
MAX_REPLAY = 50_000  # a cap on the replayed images drawn into memory
REPORT_TEST_IMAGES = 10_000  # original test images the forgetting is measured on (a seeded subset)


def split_of(meta: dict) -> emnist.Split:
    """The model's classes as a split: its EMNIST split when the mapping is that split's."""
    name, mapping = meta.get("split"), meta["mapping"]
    if name in emnist.SPLITS and emnist.SPLITS[name].mapping == mapping:
        return emnist.SPLITS[name]
    return emnist.Split(name or "custom", mapping)


def _is_idx_data(path) -> bool:
    return path is not None and any(emnist._has_data(p) for p in (Path(path), Path(path) / "gzip"))


def replay_folder(meta: dict, replay) -> tuple[str | None, str]:
    """The folder to replay original data from, and how it was chosen (said in the report)."""
    if replay is not None:
        if folder_data.is_image_folder(replay) and not _is_idx_data(replay):
            raise DataError(f"--replay {replay}: a folder of images; replay the model's original IDX data")
        return str(replay), "given with --replay"
    parent = meta.get("parent") if isinstance(meta.get("parent"), dict) else {}
    for source, where in ((meta.get("data"), "its metadata"), (parent.get("data"), "its parent's metadata")):
        if isinstance(source, str) and _is_idx_data(source):
            return source, f"the data folder {where} names"
    known = meta.get("data") if isinstance(meta.get("data"), str) else None
    why = f"{known}, named in the model's metadata, no longer holds IDX data" if known else \
        "the model's metadata names no data folder"
    return None, why


def mix(samples: emnist.Dataset, original: emnist.Dataset | None, seed: int) -> tuple[emnist.Dataset, dict]:
    """One training set of the samples, repeated, and replayed original images; the test part is the original's.

    Returns the data set and what went into it (counts, for the report).
    """
    rng = np.random.default_rng(seed)
    x_s, y_s = np.asarray(samples.x_train), np.asarray(samples.y_train, dtype=np.int32)
    copies = max(1, math.ceil(SAMPLE_IMAGES / len(y_s)))
    # Replayed images go first: training measures the framing a model stores from the first
    # images, and that must stay the original data's, not one person's.
    parts_x, parts_y = [np.tile(x_s, (copies, 1, 1))], [np.tile(y_s, copies)]
    info = {"sample_images": int(len(y_s)), "copies": copies, "replay_images": 0}
    if original is None:
        test = (samples.x_test, samples.y_test)
    else:
        count = min(len(original.y_train), MAX_REPLAY, round(REPLAY_RATIO * copies * len(y_s)))
        picked = np.sort(rng.choice(len(original.y_train), count, replace=False))
        parts_x.insert(0, np.asarray(original.x_train[picked]))
        parts_y.insert(0, np.asarray(original.y_train[picked], dtype=np.int32))
        info["replay_images"] = int(count)
        n_test = len(original.y_test)
        kept = np.sort(rng.permutation(n_test)[:REPORT_TEST_IMAGES])
        test = (np.asarray(original.x_test[kept]), np.asarray(original.y_test[kept], dtype=np.int32))
    mixed = emnist.Dataset(
        x_train=np.concatenate(parts_x), y_train=np.concatenate(parts_y), x_test=test[0], y_test=test[1],
        split=samples.split, folder=original.folder if original is not None else samples.folder,
        files={"samples": samples.folder, **(original.files if original is not None else {})},
        synthetic=bool(original is not None and original.synthetic), skipped=samples.skipped)
    return mixed, info


def accuracy(model_path, x, y) -> float | None:
    """Accuracy of a saved model on upright framed images; None when there are none."""
    if len(y) == 0:
        return None
    from handwritten.predict import Recognizer

    probs = Recognizer(model_path).predict_arrays(np.asarray(x))
    return float(np.mean(np.argmax(probs, axis=1) == np.asarray(y)))


def finetune(base: Path, out, *, data, replay, given: dict, overwrite: bool, run: dict) -> dict:
    """Continue training ``base`` on the samples in ``data`` mixed with replayed original data.

    ``given`` holds the training options as ``next_train`` received them; options left None
    take ``TEACH``'s values. ``run`` holds the rest of ``_claim_and_run``'s arguments.

    Returns:
        The training summary, with ``teach``: sample and replay counts and, before and after,
        accuracy on the held-out samples and on the original test set.
    """
    from handwritten import train

    out = modelio.check_model_path(out, for_writing=True)
    lock.check_writable(out)
    lock.check_not_saved(out, str(base), overwrite)  # before any slow work: preprocessing, evaluation
    meta = modelio.read_meta(base)
    verbose = run.get("verbose", 1)
    options = {**TEACH, **{k: v for k, v in given.items() if v is not None}}
    settings = train.make_settings(meta.get("model_name", "legacy"), finetune=True, base_model=str(base), **options)
    samples = folder_data.load(data, split=split_of(meta), framing=meta.get("framing"), seed=settings.seed)

    source, chosen = replay_folder(meta, replay)
    original, warning = None, None
    if source is None:
        warning = f"no original data to replay ({chosen}); training on the samples alone, so the model may " \
                  "forget what it knew: pass --replay DATA with the data it was trained on"
        print(f"warning: {warning}", file=sys.stderr, flush=True)
    else:
        import dataclasses

        original = train._load_data(dataclasses.replace(settings, data=source), meta)
    mixed, info = mix(samples, original, settings.seed)
    if not len(mixed.y_test):
        raise DataError(f"{data}: no sample is held out to test on and there is no original data to replay; "
                        "write at least two samples of a character")

    held = (np.asarray(samples.x_test), np.asarray(samples.y_test))
    before = {"samples": accuracy(base, *held), "original": accuracy(base, mixed.x_test, mixed.y_test)
              if original is not None else None}
    summary = train._claim_and_run(settings, out, given=options, overwrite=overwrite, dataset=mixed, **run)
    saved = summary.get("model_path")
    after = {"samples": accuracy(saved, *held) if saved else None,
             "original": accuracy(saved, mixed.x_test, mixed.y_test) if saved and original is not None else None}
    report = {
        "samples": str(data), "sample_classes": int(len(np.unique(samples.y_train))),
        "samples_train": info["sample_images"], "samples_held_out": int(len(held[1])), "copies": info["copies"],
        "skipped": len(samples.skipped), "replay": source, "replay_chosen": chosen,
        "replay_images": info["replay_images"], "original_test_images": int(len(mixed.y_test)) if original else 0,
        "before": before, "after": after, "warning": warning,
    }
    summary["teach"] = report
    if verbose and run.get("text", True):
        print_report(report, saved)
    return summary


def _change(before, after) -> str:
    if before is None or after is None:
        return ""
    return f"  ({100 * (after - before):+.1f} points)"


def print_report(r: dict, saved: str | None) -> None:
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    lines = [f"samples: {r['samples']}: {r['samples_train']} for training in {r['sample_classes']} classes "
             f"(repeated {r['copies']}x, augmented), {r['samples_held_out']} held out"
             + (f", {r['skipped']} unusable files skipped" if r["skipped"] else "")]
    if r["replay"]:
        lines.append(f"replay: {r['replay_images']:,} images of {r['replay']} ({r['replay_chosen']})")
    lines += [f"{'':22}{'before':>8}{'after':>9}",
              f"{'held-out samples':22}{pct(r['before']['samples']):>8}{pct(r['after']['samples']):>9}"
              + _change(r["before"]["samples"], r["after"]["samples"])]
    if r["replay"]:
        lines.append(f"{'original test set':22}{pct(r['before']['original']):>8}{pct(r['after']['original']):>9}"
                     + _change(r["before"]["original"], r["after"]["original"])
                     + f", {r['original_test_images']:,} images")
    if saved:
        lines.append(f"to use it: handwritten serve {saved}")
    print("\n".join(lines), flush=True)


def check_replay_use(data, replay) -> None:
    """``--replay`` goes with a folder of samples; with IDX data it would be silently unused."""
    if replay is not None and not folder_data.is_image_folder(data):
        raise HandwrittenError(f"--replay {replay}: replay mixes original data into training on a folder of "
                               f"samples; --data {data} is not one (sub-folders of images by character)")
