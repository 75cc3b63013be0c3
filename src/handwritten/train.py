"""Train a model from scratch (``create_model``, ``handwritten train``) or continue training a
saved one (``next_train``, ``handwritten finetune``).

Images stay uint8 until the ``tf.data`` pipeline gathers a batch; scaling, the optional
augmentation and prefetching happen there, so no float copy of the data set is ever made.
Each epoch ends with an atomic checkpoint beside the output (see ``checkpoint.py``); a run
that finds its checkpoint continues from the last completed epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from handwritten import checkpoint as ckpt
from handwritten import calibration, emnist, folder_data, limits, lock, modelio
from handwritten.errors import DataError, HandwrittenError
from handwritten.models import MODELS


@dataclass
class Settings:
    """Everything a training run depends on; saved in checkpoints and in the model file."""

    model_name: str  # a key of models.MODELS, or the loaded model's name when fine-tuning
    epochs: int  # the most epochs; early stopping may end sooner
    batch_size: int  # per replica; the global batch is this times the number of replicas
    learning_rate: float  # the peak of the one-cycle schedule (warm-up, then cosine decay)
    warmup: float  # fraction of all steps spent warming up; short warm-ups keep BN stable at high rates
    weight_decay: float  # AdamW's decoupled decay; a little regularises the larger model
    validation: float  # fraction of the training part held out to report and early-stop on
    patience: int  # epochs without a better validation accuracy before stopping; 0 never stops
    augment: bool  # small random rotation, shift, scale and shear; never flips (b/d, p/q)
    part: float  # fraction of the training data used (the original script's part_for_samples)
    seed: int  # one seed for the subset, the validation split, the shuffling and the weights
    data: str | None  # the data folder as given (None: ./emnist, then the cache)
    split: str | None  # EMNIST split (None: byclass when present, else inferred)
    distribute: str | None  # None, "mirrored" or "multiworker"
    base_model: str | None = None  # fine-tuning: the model file training started from


# Per-model defaults, chosen on Fashion-MNIST on 2 CPU cores (see benchmarks/fashion_accuracy.py).
DEFAULTS = {
    # model_2: four quick epochs at a high rate; aimed at >= 90% on Fashion-MNIST in under a minute.
    "model_2": dict(epochs=4, batch_size=128, learning_rate=3e-3, warmup=0.2, weight_decay=0.0,
                    validation=0.05, patience=0, augment=False),
    # model_1: long enough for augmentation to pay off; early stopping ends it when it stalls.
    "model_1": dict(epochs=24, batch_size=128, learning_rate=2e-3, warmup=0.1, weight_decay=5e-3,
                    validation=0.05, patience=6, augment=True),
}
# A model without its own entry (and any fine-tuning run) starts from these.
GENERIC = dict(epochs=5, batch_size=128, learning_rate=2e-3, warmup=0.1, weight_decay=0.0,
               validation=0.05, patience=0, augment=False)
# Fine-tuning continues from trained weights: fewer epochs, a gentler rate, no warm-up spike.
FINETUNE = dict(epochs=2, learning_rate=5e-4, warmup=0.0)
DRY_RUN_SAMPLES = 256
# Batch normalisation's moving statistics trail the weights while those change fast, so a short
# run tests far below its training accuracy with them, and they were gathered on augmented images
# with dropout on. After training they are measured again on up to this many training images, as
# inference sees them.
CALIBRATION_IMAGES = 10240
# Training steps run per call into the compiled graph: Keras's per-step Python work costs as much
# as a small model's step on a CPU. Batch callbacks (progress bar, Ctrl-C) then run every this many steps.
STEPS_PER_EXECUTION = 8


def parse_part(part) -> float:
    """The fraction of the training data to use: a float in (0, 1], or an int k >= 2 meaning 1/k."""
    if isinstance(part, str):
        text = part.strip()
        try:
            part = int(text)
        except ValueError:
            try:
                part = float(text)
            except ValueError:
                raise HandwrittenError(f"part {text!r}: not a number; give a fraction in (0, 1] "
                                       "or an integer k >= 2 meaning 1/k") from None
    if isinstance(part, bool) or not isinstance(part, (int, float)):
        raise HandwrittenError(f"part {part!r}: must be a fraction in (0, 1] or an integer k >= 2 meaning 1/k")
    if isinstance(part, int):
        if part == 1 or part >= 2:
            return 1.0 / part
        raise HandwrittenError(f"part {part}: an integer part must be k >= 2 (meaning 1/k of the data), or 1")
    if not (0.0 < part <= 1.0) or math.isnan(part):
        raise HandwrittenError(f"part {part}: a fractional part must be in (0, 1]")
    return float(part)


def make_settings(model_name: str, *, finetune: bool = False, **given) -> Settings:
    """Settings from the model's defaults overridden by every option that is not None."""
    values = dict(DEFAULTS.get(model_name, GENERIC))
    if finetune:
        values.update(FINETUNE)
    values.update({k: v for k, v in given.items() if v is not None})
    values.setdefault("data", None)
    values.setdefault("split", None)
    values.setdefault("distribute", None)
    settings = Settings(model_name=model_name, **values)
    limits.check_training(dataclasses.asdict(settings))
    return settings


def _framing(images) -> dict:
    """How the training images are framed, so that prediction can frame a user's image alike."""
    from handwritten.framing import measure_framing

    try:
        return measure_framing(images)
    except ValueError:  # nothing to measure (blank images): assume EMNIST's framing
        return {"kind": "bbox", "pad": 2}


def _subsets(dataset, settings: Settings, dry_run: bool):
    """Seeded index arrays for the training subset and the validation hold-out."""
    import numpy as np

    rng = np.random.default_rng(settings.seed)
    n = len(dataset.y_train)
    chosen = rng.permutation(n)[: max(1, round(n * settings.part))]
    if dry_run:
        chosen = chosen[:DRY_RUN_SAMPLES]
    held = int(len(chosen) * settings.validation)
    train_idx, val_idx = np.sort(chosen[held:]), np.sort(chosen[:held])
    if len(train_idx) == 0:
        raise DataError(f"{dataset.folder}: no training images left after part={settings.part} "
                        f"and validation={settings.validation}")
    return train_idx, val_idx


def _augment(images):
    """Random affine per image: rotation +-8 deg, shift +-2 px, scale 0.95-1.05, shear +-0.1.

    EMNIST's images are centred and scaled to their bounding box, so shift and scale vary little;
    rotation and shear stand for the slant of handwriting.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    size = tf.cast(tf.shape(images)[1], tf.float32)
    uniform = lambda lo, hi: tf.random.uniform([n], lo, hi)  # noqa: E731
    angle, shear = uniform(-0.14, 0.14), uniform(-0.1, 0.1)
    scale, tx, ty = uniform(0.95, 1.05), uniform(-2.0, 2.0), uniform(-2.0, 2.0)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # The transform maps each output pixel to where it is read in the input, about the centre.
    a0, a1, b0, b1 = cos, -sin + shear * cos, sin, cos + shear * sin
    c = (size - 1.0) / 2.0
    a2, b2 = c - a0 * c - a1 * c + tx, c - b0 * c - b1 * c + ty
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")


def _pipeline(x, y, indices, *, batch: int, input_shape, transposed: bool, train: bool, augment: bool, seed: int):
    """A ``tf.data`` pipeline that gathers uint8 batches by index and scales them to [0, 1]."""
    import tensorflow as tf

    def prepare(idx):
        images = tf.gather(x, idx)
        if transposed:  # a model trained on EMNIST's files as stored
            images = tf.transpose(images, [0, 2, 1])
        images = tf.cast(images, tf.float32)[..., None] / 255.0
        if augment:
            images = _augment(images)
        return tf.reshape(images, [-1, *input_shape]), tf.gather(y, idx)

    if train:
        # One permutation of the indices per epoch, drawn whole: tf.data's shuffle() passes every
        # element through its buffer one by one, which halved model_2's throughput on two cores.
        order = tf.constant(indices)
        ds = (tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
              .map(lambda s: tf.random.experimental.stateless_shuffle(order, seed=tf.stack([s, s // 3])))
              .flat_map(tf.data.Dataset.from_tensor_slices))
    else:
        ds = tf.data.Dataset.from_tensor_slices(indices)
    ds = ds.batch(batch).apply(tf.data.experimental.assert_cardinality(math.ceil(len(indices) / batch)))
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _check_resume(state: dict, settings: Settings, given: dict, path: Path) -> Settings:
    """The checkpoint's settings; an error if an option given now contradicts them."""
    saved = Settings(**state["settings"])
    wanted = dataclasses.asdict(settings)
    keys = ["model_name", "base_model"] + [k for k, v in given.items() if v is not None]
    for key in keys:
        old, new = getattr(saved, key), wanted[key]
        if key in ("data", "base_model") and old and new:
            old, new = str(Path(old).resolve()), str(Path(new).resolve())
        if old != new:
            raise HandwrittenError(
                f"{path}: checkpoint was made with {key}={getattr(saved, key)!r}, this run asks for "
                f"{key}={wanted[key]!r}; run with the checkpoint's settings to resume, or pass --restart "
                "(resume=False) to start over")
    return saved


def _describe_epoch(entry: dict) -> str:
    keys = [("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")]
    parts = [f"{short} {entry[k]:.4f}" for k, short in keys if k in entry]
    return (f"epoch {entry['epoch']}: " + ", ".join(parts)
            + f", {entry['seconds']:.1f} s, {entry['samples_per_second']:.0f} samples/s")


def _print_summary(s: dict) -> None:
    data = f"{s['data']} (split {s['split']}, {s['classes']} classes)"
    if s["synthetic"]:
        data += " - the synthetic offline sample, not EMNIST"
    resumed = f", resumed after epoch {s['resumed_from']}" if s["resumed_from"] else ""
    stopped = f", stopped early, best epoch {s['best_epoch']}" if s["stopped_early"] else ""
    lines = [
        f"data: {data}",
        f"  {s['train_samples']} training, {s['validation_samples']} validation, {s['test_samples']} test images",
        f"model: {s['model']} ({s['params']:,} parameters)"
        + (f", fine-tuned from {s['base_model']}" if s["base_model"] else ""),
        f"epochs: {s['epochs']}{resumed}{stopped}; this run {s['epochs_run']} epoch{'' if s['epochs_run'] == 1 else 's'} in {s['seconds']:.1f} s "
        f"({s['samples_per_second']:.0f} samples/s)" + (f", {s['replicas']} replicas" if s["replicas"] > 1 else ""),
        "final train accuracy: " + (f"{s['train_accuracy']:.4f}" if s["train_accuracy"] is not None else "-")
        + ", validation accuracy: " + (f"{s['val_accuracy']:.4f}" if s["val_accuracy"] is not None else "-"),
        f"test accuracy: {s['test_accuracy']:.4f}",
    ]
    if s["model_path"]:
        lines.append(f"model saved to {s['model_path']} (history inside, in its metadata)")
    else:
        lines.append("dry run: nothing saved")
    print("\n".join(lines), flush=True)


def _load_data(settings: Settings, base_meta: dict | None):
    """The data set; for a fine-tune, in the model's split and with the model's number of classes."""
    split = settings.split
    if split is None and base_meta and base_meta.get("split") in emnist.SPLITS:
        # A fine-tune reads the split the model was trained on when the folder has it.
        folder = emnist.find_data(settings.data)
        split = base_meta["split"] if base_meta["split"] in emnist._emnist_splits_in(folder) else None
    dataset = emnist.load(settings.data, split)
    if base_meta and dataset.classes != len(base_meta["mapping"]):
        raise DataError(
            f"{dataset.folder}: has {dataset.classes} classes (split {dataset.split.name}) but the model "
            f"{settings.base_model} was trained for {len(base_meta['mapping'])} (split {base_meta.get('split')}); "
            "fine-tune it on data with the same classes")
    if len(dataset.y_test) == 0:
        raise DataError(f"{dataset.folder}: the test part holds no images; a trained model could not be tested")
    return dataset


def _recalibrate(model, batches) -> int:
    """Set every batch-normalisation layer's moving statistics to the average of its batch statistics.

    ``batches`` yields (images, labels) as evaluation sees them; dropout is off meanwhile, so the
    statistics are those inference meets. Weights are unchanged. Returns the images used.
    """
    import keras

    def nested(layer):
        for inner in getattr(layer, "layers", []):
            yield inner
            yield from nested(inner)

    layers = list(nested(model))
    norms = [(layer, layer.momentum) for layer in layers
             if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable]
    drops = [(layer, layer.rate) for layer in layers if isinstance(layer, keras.layers.Dropout)]
    if not norms:
        return 0
    seen = 0
    try:
        for layer, _ in drops:
            layer.rate = 0.0
        for i, (images, _) in enumerate(batches):
            for layer, _ in norms:
                layer.momentum = i / (i + 1)  # a running mean over the batches so far
            model(images, training=True)
            seen += int(images.shape[0])
    finally:
        for layer, momentum in norms:
            layer.momentum = momentum
        for layer, rate in drops:
            layer.rate = rate
    return seen


def _compile(model, settings: Settings, steps_per_epoch: int) -> None:
    """Adam(W) on a one-cycle schedule: linear warm-up to the peak rate, then cosine decay.

    The schedule is a function of the optimizer's step counter, which the checkpoint saves,
    so a resumed run continues the same curve.
    """
    import keras

    total = settings.epochs * steps_per_epoch
    warm = int(total * settings.warmup)
    schedule = keras.optimizers.schedules.CosineDecay(
        settings.learning_rate * (0.1 if warm else 1.0), max(1, total - warm), alpha=0.01,
        warmup_target=settings.learning_rate if warm else None, warmup_steps=warm)
    optimizer = (keras.optimizers.AdamW(schedule, weight_decay=settings.weight_decay)
                 if settings.weight_decay else keras.optimizers.Adam(schedule))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


def _adapt_to_multiworker(model, strategy, batch) -> None:
    """Work around Keras 3's ``fit`` under MultiWorkerMirroredStrategy (tensorflow/tensorflow#72388).

    Keras reduces each step's logs across workers with ``axis=0``, which fails for scalar
    metrics, and reduces a whole (x, y) batch in one call before the first step. Metrics are
    already synchronised across workers, so giving them one axis changes no value; the model's
    optimizer and metrics are built from one plain batch instead.
    """
    import tensorflow as tf

    with strategy.scope():
        model._symbolic_build(data_batch=batch)
    model._maybe_symbolic_build = lambda *args, **kwargs: None
    for name in ("train_step", "test_step"):
        step = getattr(model, name)
        setattr(model, name, lambda data, step=step: {k: tf.reshape(v, [1]) for k, v in step(data).items()})


def _run(settings: Settings, out, *, given: dict, resume, verbose: int, dry_run: bool, text: bool,
         resume_hint: str | None, dataset=None) -> dict:
    """Train under ``settings`` and save to ``out``; the shared body of train and fine-tune.

    ``dataset`` is data prepared by the caller (``teach.py``'s mix of samples and replay); else
    the data ``settings`` names is loaded.
    """
    started = time.time()
    out = modelio.check_model_path(out, for_writing=True)
    cpath = ckpt.checkpoint_path(out)
    state = None if (resume is False or dry_run) else ckpt.read_checkpoint(cpath)
    if resume and state is None:
        raise HandwrittenError(f"{cpath}: no checkpoint to resume from (it is written after each completed epoch)")
    if state is not None:
        settings = _check_resume(state, settings, given, cpath)
    if dry_run:
        settings = dataclasses.replace(settings, epochs=1)
    strategy = ckpt.make_strategy(settings.distribute)  # before any other TensorFlow work
    chief = ckpt.is_chief(strategy)

    base_meta = modelio.read_meta(settings.base_model) if settings.base_model else None
    dataset = dataset if dataset is not None else _load_data(settings, base_meta)
    orientation = base_meta.get("orientation", "upright") if base_meta else "upright"

    import keras
    import numpy as np
    import tensorflow as tf
    from tqdm import tqdm

    train_idx, val_idx = _subsets(dataset, settings, dry_run)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    global_batch = settings.batch_size * replicas
    steps = math.ceil(len(train_idx) / global_batch)
    history = list(state["history"]) if state else []
    initial_epoch = int(state["epoch"]) if state else 0
    keras.utils.set_random_seed(settings.seed + initial_epoch)

    with strategy.scope() if strategy else contextlib.nullcontext():
        if state:
            model = ckpt.load_checkpoint_model(cpath)
            model.optimizer.iterations.assign(initial_epoch * steps)  # schedule restarts at the epoch boundary
        else:
            if base_meta:
                model, _ = modelio.load_model(settings.base_model, compile=False)
            else:
                model = MODELS[settings.model_name](dataset.classes)
            _compile(model, settings, steps)
    # Several steps per call fail inside Keras under tf.distribute strategies; those run on GPUs anyway.
    model.steps_per_execution = 1 if strategy else STEPS_PER_EXECUTION

    input_shape = tuple(model.input_shape[1:])
    transposed = orientation == "transposed"
    x_train = tf.constant(np.ascontiguousarray(dataset.x_train))
    y_train = tf.constant(np.asarray(dataset.y_train, dtype=np.int32))
    common = dict(input_shape=input_shape, transposed=transposed, seed=settings.seed + initial_epoch)
    train_ds = _pipeline(x_train, y_train, train_idx, batch=global_batch, train=True, augment=settings.augment,
                         **common)
    val_ds = (_pipeline(x_train, y_train, val_idx, batch=global_batch, train=False, augment=False, **common)
              if len(val_idx) else None)

    framing = _framing(np.asarray(dataset.x_train[np.sort(train_idx[:2000])]))
    meta = {
        "format": 1, "model_name": settings.model_name, "split": dataset.split.name, "mapping": dataset.mapping,
        "orientation": orientation, "framing": framing, "config": dataclasses.asdict(settings),
        "data": str(dataset.folder.resolve()), "synthetic": dataset.synthetic, "classes": dataset.classes,
        "params": int(model.count_params()), "train_samples": int(len(train_idx)),
        "validation_samples": int(len(val_idx)), "keras": keras.__version__,
    }
    if base_meta:
        meta["parent"] = {k: base_meta.get(k) for k in ("model_name", "test_accuracy", "history", "data")}
        meta["parent"]["path"] = settings.base_model

    # "stopped": early stopping ended the run (possibly before a crash and this resume).
    run = {"t0": 0.0, "last": 0.0, "bar": None, "best": None, "stopped": bool(state and state.get("stopped_early"))}
    guard = ckpt.LossGuard()

    def checkpoint_state() -> dict:
        return {**meta, "history": history, "epoch": len(history), "settings": dataclasses.asdict(settings),
                "stopped_early": run["stopped"]}

    def on_epoch_begin(epoch, logs=None):
        run["t0"] = run["last"] = time.perf_counter()
        run["epoch"] = epoch
        run["bar"] = tqdm(total=steps, desc=f"epoch {epoch + 1}/{settings.epochs}", unit="batch", file=sys.stderr,
                          disable=verbose < 1, leave=False, mininterval=0.5, dynamic_ncols=True)

    def on_train_batch_end(batch, logs=None):
        run["last"] = time.perf_counter()
        # ``batch`` is the last of the steps just run; Keras counts a whole last call of several steps.
        run["bar"].update(min(batch + 1, steps) - run["bar"].n)
        if logs:
            run["bar"].set_postfix(loss=f"{float(logs['loss']):.4f}", acc=f"{float(logs['accuracy']):.4f}",
                                   refresh=False)
        if stop.requested or guard.check(run["epoch"], logs):
            model.stop_training = True

    def on_epoch_end(epoch, logs=None):
        run["bar"].close()
        if stop.requested or guard.check(epoch, logs):
            return  # an interrupted or diverged epoch is not a completed one
        now = time.perf_counter()
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        entry["seconds"] = round(now - run["t0"], 3)
        entry["samples_per_second"] = round(len(train_idx) / max(run["last"] - run["t0"], 1e-9), 1)
        entry["learning_rate"] = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        history.append(entry)
        if verbose:
            print(_describe_epoch(entry), file=sys.stderr, flush=True)
        if settings.patience and "val_accuracy" in entry:
            best = max(range(len(history)), key=lambda i: history[i]["val_accuracy"])
            if best == len(history) - 1:
                run["best"] = (best + 1, model.get_weights())
            elif len(history) - 1 - best >= settings.patience:
                model.stop_training = run["stopped"] = True
        if chief and not dry_run:
            ckpt.save_checkpoint(model, cpath, checkpoint_state())

    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end, on_train_batch_end=on_train_batch_end)
    if chief and not dry_run:
        ckpt.remove_stale_temporaries(cpath)
        ckpt.remove_stale_temporaries(out)
    if settings.distribute == "multiworker":
        _adapt_to_multiworker(model, strategy, next(iter(train_ds)))
    fit_started = time.perf_counter()
    with ckpt.StopRequest(verbose) as stop:
        if initial_epoch < settings.epochs and not run["stopped"]:
            model.fit(train_ds, validation_data=val_ds, epochs=settings.epochs, initial_epoch=initial_epoch,
                      callbacks=[callback], verbose=0, shuffle=False)
    fit_seconds = time.perf_counter() - fit_started
    if guard.epoch:
        raise guard.error(cpath if chief and not dry_run else None, len(history), settings.learning_rate)
    if stop.requested:
        if chief and not dry_run:
            ckpt.save_checkpoint(model, cpath, checkpoint_state())
        hint = resume_hint or "call the same function again with the same arguments"
        print(f"interrupted: {len(history)} of {settings.epochs} epochs complete; checkpoint saved to {cpath}\n"
              f"to resume: {hint}", file=sys.stderr, flush=True)
        raise KeyboardInterrupt

    best_epoch = len(history)
    if run["best"] and run["best"][0] != len(history):
        best_epoch = run["best"][0]
        model.set_weights(run["best"][1])  # early stopping keeps the weights of the best validation epoch
    calibration_started = time.perf_counter()
    picked = np.random.default_rng(settings.seed).permutation(train_idx)[:CALIBRATION_IMAGES]
    with strategy.scope() if strategy else contextlib.nullcontext():
        _recalibrate(model, _pipeline(x_train, y_train, picked, batch=256, train=False, augment=False, **common))
    fit_seconds += time.perf_counter() - calibration_started
    # Temperature scaling on the held-out images: honest probabilities, the same answers.
    meta.update(calibration.for_model(model, val_ds, dataset.y_train[val_idx], calibration.MIN_CONFIDENCE,
                                      verbose if chief else 0))

    test_idx = np.arange(len(dataset.y_test))[: DRY_RUN_SAMPLES if dry_run else None]
    x_test = tf.constant(np.ascontiguousarray(dataset.x_test))
    y_test = tf.constant(np.asarray(dataset.y_test, dtype=np.int32))
    test_ds = _pipeline(x_test, y_test, test_idx, batch=max(global_batch, 512), train=False, augment=False, **common)
    test_loss, test_accuracy = model.evaluate(test_ds, verbose=0)

    meta.update(history=history, test_accuracy=float(test_accuracy), test_loss=float(test_loss),
                test_samples=int(len(test_idx)), best_epoch=best_epoch,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    saved = None
    if chief and not dry_run:
        saved = str(modelio.save_model(model, out, meta))
        cpath.unlink(missing_ok=True)  # the finished model supersedes the checkpoint

    ran = history[initial_epoch:]
    last = history[-1] if history else {}
    summary = {
        "model": settings.model_name, "model_path": saved, "base_model": settings.base_model,
        "data": str(dataset.folder), "split": dataset.split.name, "classes": dataset.classes,
        "synthetic": dataset.synthetic, "params": meta["params"], "orientation": orientation,
        "train_samples": meta["train_samples"], "validation_samples": meta["validation_samples"],
        "test_samples": int(len(test_idx)), "epochs": len(history), "epochs_run": len(ran),
        "resumed_from": initial_epoch, "stopped_early": run["stopped"], "best_epoch": best_epoch,
        "seconds": round(fit_seconds, 2), "total_seconds": round(time.time() - started, 2),
        "samples_per_second": round(sum(e["samples_per_second"] for e in ran) / len(ran), 1) if ran else 0.0,
        "train_accuracy": last.get("accuracy"), "val_accuracy": last.get("val_accuracy"),
        "test_accuracy": float(test_accuracy), "test_loss": float(test_loss), "temperature": meta["temperature"],
        "replicas": replicas, "global_batch_size": global_batch, "distribute": settings.distribute,
        "chief": chief, "dry_run": dry_run,
        "seed": settings.seed, "config": dataclasses.asdict(settings),
    }
    if verbose and text:
        _print_summary(summary)
    return summary


def create_model(model_name: str, path_to_done_NN, part_for_samples=1.0, *, data=None, split=None, epochs=None,
                 batch_size=None, learning_rate=None, validation=None, augment=None, seed: int = 0,
                 distribute=None, resume=None, dry_run: bool = False, verbose: int = 1, **_cli) -> dict:
    """Build the model called ``model_name``, train it, and save it to ``path_to_done_NN``.

    Args:
        model_name: a key of ``handwritten.models.MODELS`` (``model_1`` or ``model_2``).
        path_to_done_NN: where the trained model goes; ``.h5`` or ``.keras`` chooses the format.
        part_for_samples: fraction of the training data to use, in (0, 1]; an int k >= 2 means 1/k.
        data: data folder (default: ``./emnist``, then the user cache).
        split: EMNIST split (default: byclass when present, else inferred from the labels).
        epochs, batch_size, learning_rate, validation, augment: override the model's
            defaults in ``DEFAULTS``.
        seed: seeds the subset, the validation split, the shuffling and the initial weights.
        distribute: None, ``"mirrored"`` or ``"multiworker"`` (cluster from ``TF_CONFIG``).
        resume: None continues from a checkpoint if one is beside the output; True requires
            one; False ignores (and later replaces) it.
        dry_run: one epoch on 256 images, nothing saved: checks the whole path in seconds.
        verbose: 0 silent; 1 progress bars and epoch lines on stderr, summary on stdout.

    Returns:
        The summary: ``test_accuracy``, ``epochs``, ``seconds``, ``samples_per_second``,
        ``model_path`` and more (the same object ``handwritten train --json`` prints).

    Raises:
        HandwrittenError: an unknown model, a bad part or path, unusable data, or a checkpoint
            made with other settings.
        KeyboardInterrupt: after Ctrl-C, once the checkpoint is saved.
    """
    if model_name not in MODELS:
        raise HandwrittenError(f"unknown model {model_name!r}; choose one of: {', '.join(MODELS)}")
    given = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, validation=validation,
                 augment=augment, part=parse_part(part_for_samples), seed=seed,
                 data=None if data is None else str(data), split=split, distribute=distribute)
    settings = make_settings(model_name, **given)
    return _claim_and_run(settings, path_to_done_NN, given=given, resume=resume, verbose=verbose, dry_run=dry_run,
                          text=_cli.get("text", True), resume_hint=_cli.get("resume_hint"),
                          command=_cli.get("command"))


def next_train(path_to_done_NN, path_to_model, part_of_dataset=1.0, *, data=None, split=None, epochs=None,
               batch_size=None, learning_rate=None, validation=None, augment=None, seed: int = 0,
               distribute=None, resume=None, dry_run: bool = False, verbose: int = 1, overwrite: bool = False,
               replay=None, **_cli) -> dict:
    """Load the model at ``path_to_model``, continue training it, and save it to ``path_to_done_NN``.

    The split, class mapping and input orientation come from the model file; a model saved
    by the original Keras 2 script is read as byclass with transposed input and fed
    transposed images. Data with a different number of classes is refused. The other
    arguments are those of :func:`create_model`, with gentler defaults (``FINETUNE``);
    ``path_to_done_NN`` may be ``path_to_model`` itself only with ``overwrite=True``.

    When ``data`` is a folder of a person's samples (one sub-folder of images per character),
    they are mixed with a replay of the original data (``replay``, else the folder the model's
    metadata names) and the summary's ``teach`` reports before and after (see ``teach.py``).

    Returns:
        The summary, as for :func:`create_model`.
    """
    base = modelio.check_model_path(path_to_model)
    meta = modelio.read_meta(base)
    given = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, validation=validation,
                 augment=augment, part=parse_part(part_of_dataset), seed=seed,
                 data=None if data is None else str(data), split=split, distribute=distribute)
    run = dict(resume=resume, verbose=verbose, dry_run=dry_run, text=_cli.get("text", True),
               resume_hint=_cli.get("resume_hint"), command=_cli.get("command"))
    from handwritten import teach

    teach.check_replay_use(data, replay)
    if replay is not None or folder_data.is_image_folder(data):
        return teach.finetune(base, path_to_done_NN, data=data, replay=replay, given=given, overwrite=overwrite, run=run)
    settings = make_settings(meta.get("model_name", "legacy"), finetune=True, base_model=str(base), **given)
    return _claim_and_run(settings, path_to_done_NN, given=given, overwrite=overwrite, **run)


def _claim_and_run(settings: Settings, out, *, dry_run: bool, overwrite: bool = False, command: str | None = None,
                   **run) -> dict:
    """Check the output before any work, then train holding its lock (see ``lock.py``)."""
    out = modelio.check_model_path(out, for_writing=True)
    lock.check_writable(out)
    lock.check_not_base(out, settings.base_model, overwrite)
    claim = lock.OutputLock(out, command) if not dry_run and lock.writes_output() else contextlib.nullcontext()
    with claim:
        return _run(settings, out, dry_run=dry_run, **run)


def _resume_hint(argv) -> str:
    import shlex

    words = ["handwritten", *argv]
    if "--resume" not in words:
        words.append("--resume")
    return " ".join(shlex.quote(w) for w in words if w != "--restart")


def run_cli(args) -> int:
    import json

    options = dict(data=args.data, split=args.split, epochs=args.epochs, batch_size=args.batch_size,
                   learning_rate=args.learning_rate, validation=args.validation, augment=args.augment,
                   seed=args.seed, distribute=args.distribute, dry_run=args.dry_run,
                   resume=True if args.resume else (False if args.restart else None),
                   text=not args.json, resume_hint=_resume_hint(sys.argv[1:]),
                   command=" ".join(["handwritten", *sys.argv[1:]]))
    if args.resume and args.restart:
        raise HandwrittenError("--resume and --restart contradict each other; give one")
    if args.command == "train":
        out = args.out or f"{args.model}.keras"
        summary = create_model(args.model, out, args.part, **options)
    else:
        summary = next_train(args.out, args.model, args.part, overwrite=args.overwrite, replay=args.replay, **options)
    if args.json:
        print(json.dumps(summary), flush=True)
    return 0


def _add_common(p) -> None:
    p.add_argument("--data", default=None, metavar="DIR",
                   help="data folder with IDX files, or with sub-folders of images by character (7/, upper-A/, lower-a/ ...) "
                        "(default: ./emnist, then the user cache)")
    p.add_argument("--split", default=None, help="EMNIST split (default: byclass when present, else inferred)")
    p.add_argument("--part", default="1.0", metavar="F",
                   help="fraction of the training data to use, in (0, 1]; an integer k >= 2 means 1/k "
                        "(default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed for the subset, validation split, shuffling and weights (default: %(default)s)")
    p.add_argument("--distribute", choices=ckpt.STRATEGIES, default=None,
                   help="train on all GPUs of this machine (mirrored) or on several machines configured by "
                        "TF_CONFIG (multiworker) (default: %(default)s, one device)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint beside --out; it must exist (default: %(default)s; "
                        "re-running the same command also resumes when a checkpoint is there)")
    p.add_argument("--restart", action="store_true",
                   help="ignore a checkpoint beside --out and start over (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="one epoch on 256 images, nothing saved, to check the set-up (default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on stdout (default: %(default)s)")
    p.set_defaults(run=run_cli)


def _defaults_text(key: str, finetune: bool = False) -> str:
    if finetune and key in FINETUNE:
        return f"{FINETUNE[key]}"
    return ", ".join(f"{name}: {values[key]}" for name, values in DEFAULTS.items())


def _add_hyper(p, finetune: bool = False) -> None:
    p.add_argument("--epochs", type=int, default=None,
                   help=f"most epochs to train (default: %(default)s, meaning {_defaults_text('epochs', finetune)})")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size per replica (default: %(default)s, meaning "
                        f"{_defaults_text('batch_size', finetune)})")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="peak learning rate of the one-cycle schedule (default: %(default)s, meaning "
                        f"{_defaults_text('learning_rate', finetune)})")
    p.add_argument("--validation", type=float, default=None,
                   help="fraction of the training data held out for validation (default: %(default)s, meaning "
                        f"{_defaults_text('validation', finetune)})")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="random rotation, shift, scale and shear, never flips (default: %(default)s, meaning "
                        f"{_defaults_text('augment', finetune)})")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a new model on EMNIST (or any IDX data) and save it",
                       description="Train model_1 (accurate) or model_2 (fast) and save it with its classes, "
                                   "orientation and history. A checkpoint beside --out is written after each "
                                   "epoch; re-running the same command continues from it.")
    p.add_argument("--model", choices=list(MODELS), default="model_2", help="which network (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="PATH",
                   help="model file to write, .h5 or .keras (default: %(default)s, meaning MODEL.keras)")
    _add_hyper(p)
    _add_common(p)

    p = sub.add_parser("finetune", help="continue training a saved model and save the result",
                       description="Load a model file (also one saved by the original Keras 2 script), train it "
                                   "further on data with the same classes, and save it to --out.")
    p.add_argument("--model", required=True, metavar="PATH", help="the model file to start from (required)")
    p.add_argument("--out", required=True, metavar="PATH", help="model file to write, .h5 or .keras (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="allow --out to be the --model file itself, replacing it (default: %(default)s)")
    p.add_argument("--replay", default=None, metavar="DIR",
                   help="with --data a folder of your own samples: the original training data to mix in so "
                        "nothing is forgotten (default: %(default)s, the data folder the model names)")
    _add_hyper(p, finetune=True)
    _add_common(p)
