"""Train a model from scratch (``create_model``, ``handwritten train``) or continue training a
saved one (``next_train``, ``handwritten finetune``).

``_run`` is the body both share, step by step: settings (``settings.py``), data and pipelines
(``pipeline.py``), the model, one ``fit`` with its callbacks (``loop.py``), batch-norm
recalibration, the test, the saved model and the summary (``summary.py``). The command line is
in ``train_cli.py``. Each epoch ends with an atomic checkpoint beside the output (see
``checkpoint.py``); a run that finds its checkpoint continues from the last completed epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

from handwritten import checkpoint as ckpt
from handwritten import calibration, folder_data, lock, modelio
from handwritten.errors import HandwrittenError
from handwritten.fused import fuse_batch_norm
from handwritten.loop import STEPS_PER_EXECUTION, TrainingLoop
from handwritten.loop import adapt_to_multiworker as _adapt_to_multiworker
from handwritten.loop import compile_model as _compile
from handwritten.loop import describe_epoch as _describe_epoch
from handwritten.models import MODELS
from handwritten.pipeline import load_training_data as _load_data
from handwritten.pipeline import make_pipeline as _pipeline
from handwritten.pipeline import random_affine as _augment
from handwritten.pipeline import split_indices as _subsets
from handwritten.pipeline import training_framing as _framing
from handwritten.settings import DEFAULTS, DRY_RUN_SAMPLES, FINETUNE, GENERIC, Settings, make_settings, parse_part
from handwritten.settings import check_resume as _check_resume
from handwritten.summary import CALIBRATION_IMAGES, make_summary
from handwritten.summary import print_summary as _print_summary
from handwritten.summary import recalibrate as _recalibrate
from handwritten.train_cli import register, run_cli

# Names kept importable from here for the code and tests that use them.
__all__ = [
    "CALIBRATION_IMAGES", "DEFAULTS", "DRY_RUN_SAMPLES", "FINETUNE", "GENERIC", "STEPS_PER_EXECUTION", "Settings",
    "create_model", "make_settings", "next_train", "parse_part", "register", "run_cli",
    "_adapt_to_multiworker", "_augment", "_check_resume", "_compile", "_describe_epoch", "_framing",
    "_load_data", "_pipeline", "_print_summary", "_recalibrate", "_subsets",
]


@dataclass
class _Prepared:
    """What a run trains with: the model, the training data as tensors and pipelines, the metadata."""

    model: object
    history: list  # entries of the epochs completed so far (a resumed run's come from its checkpoint)
    initial_epoch: int
    steps: int  # per epoch
    replicas: int
    global_batch: int
    orientation: str  # "upright", or "transposed" for a model trained on EMNIST's files as stored
    train_idx: object
    val_idx: object
    x_train: object  # uint8 tensors; pipelines gather batches from them by index
    y_train: object
    pipeline_options: dict  # input shape, orientation and seed, the same for every pipeline of the run
    train_ds: object
    val_ds: object
    meta: dict  # saved in each checkpoint and in the model file

    def batches(self, indices, batch: int):
        """Unaugmented batches of the training images at ``indices``, in order."""
        return _pipeline(self.x_train, self.y_train, indices, batch=batch, train=False, augment=False,
                         **self.pipeline_options)


def _run(settings: Settings, out, *, given: dict, resume, verbose: int, dry_run: bool, text: bool,
         resume_hint: str | None, dataset=None) -> dict:
    """Train under ``settings`` and save to ``out``; the shared body of train and fine-tune.

    ``dataset`` is data prepared by the caller (``teach.py``'s mix of samples and replay); else
    the data ``settings`` names is loaded.
    """
    started = time.time()
    out = modelio.check_model_path(out, for_writing=True)
    cpath = ckpt.checkpoint_path(out)
    settings, state = _settings_to_run(settings, cpath, given=given, resume=resume, dry_run=dry_run)
    strategy = ckpt.make_strategy(settings.distribute)  # before any other TensorFlow work
    chief = ckpt.is_chief(strategy)

    base_meta = modelio.read_meta(settings.base_model) if settings.base_model else None
    dataset = dataset if dataset is not None else _load_data(settings, base_meta)
    job = _prepare(settings, dataset, base_meta, state, cpath, strategy, dry_run)

    saves = chief and not dry_run
    loop = TrainingLoop(job.model, settings, steps=job.steps, train_samples=len(job.train_idx), history=job.history,
                        meta=job.meta, checkpoint=cpath, saves=saves, verbose=verbose,
                        stopped=bool(state and state.get("stopped_early")))
    if saves:
        ckpt.remove_stale_temporaries(cpath)
        ckpt.remove_stale_temporaries(out)
    if settings.distribute == "multiworker":
        _adapt_to_multiworker(job.model, strategy, next(iter(job.train_ds)))
    fit_seconds = loop.fit(job.train_ds, job.val_ds, job.initial_epoch)
    loop.raise_if_cut_short(resume_hint)
    best_epoch = loop.keep_best_weights()

    calibration_started = time.perf_counter()
    with _scope(strategy):
        _recalibrate(job.model, job.batches(_calibration_images(settings, job.train_idx), batch=256))
    fit_seconds += time.perf_counter() - calibration_started
    # Temperature scaling on the held-out images: honest probabilities, the same answers.
    job.meta.update(calibration.for_model(job.model, job.val_ds, dataset.y_train[job.val_idx],
                                          calibration.MIN_CONFIDENCE, verbose if chief else 0))

    test_loss, test_accuracy, test_samples = _test(job, dataset, dry_run)
    job.meta.update(history=job.history, test_accuracy=test_accuracy, test_loss=test_loss, test_samples=test_samples,
                    best_epoch=best_epoch, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    saved = None
    if saves:
        saved = str(modelio.save_model(job.model, out, job.meta))
        cpath.unlink(missing_ok=True)  # the finished model supersedes the checkpoint

    summary = make_summary(settings, dataset, job.meta, initial_epoch=job.initial_epoch, stopped=loop.stopped,
                           best_epoch=best_epoch, saved=saved, seconds=fit_seconds,
                           total_seconds=time.time() - started, replicas=job.replicas,
                           global_batch=job.global_batch, chief=chief, dry_run=dry_run, orientation=job.orientation)
    if verbose and text:
        _print_summary(summary)
    return summary


def _settings_to_run(settings: Settings, cpath: Path, *, given: dict, resume, dry_run: bool):
    """The settings this run trains under (a checkpoint's, when resuming) and the checkpoint's state, or None."""
    state = None if (resume is False or dry_run) else ckpt.read_checkpoint(cpath)
    if resume and state is None:
        raise HandwrittenError(f"{cpath}: no checkpoint to resume from (it is written after each completed epoch)")
    if state is not None:
        settings = _check_resume(state, settings, given, cpath)
    if dry_run:
        settings = dataclasses.replace(settings, epochs=1)
    return settings, state


def _scope(strategy):
    return strategy.scope() if strategy else contextlib.nullcontext()


def _prepare(settings: Settings, dataset, base_meta: dict | None, state: dict | None, cpath: Path, strategy,
             dry_run: bool) -> _Prepared:
    """The model (new, loaded from the base model, or from the checkpoint), the data pipelines and the metadata."""
    import keras
    import numpy as np
    import tensorflow as tf

    orientation = base_meta.get("orientation", "upright") if base_meta else "upright"
    train_idx, val_idx = _subsets(dataset, settings, dry_run)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    global_batch = settings.batch_size * replicas
    steps = math.ceil(len(train_idx) / global_batch)
    initial_epoch = int(state["epoch"]) if state else 0
    keras.utils.set_random_seed(settings.seed + initial_epoch)
    model = _build_model(settings, dataset.classes, base_meta, state, cpath, strategy, steps)

    x_train = tf.constant(np.ascontiguousarray(dataset.x_train))
    y_train = tf.constant(np.asarray(dataset.y_train, dtype=np.int32))
    options = dict(input_shape=tuple(model.input_shape[1:]), transposed=orientation == "transposed",
                   seed=settings.seed + initial_epoch)
    train_ds = _pipeline(x_train, y_train, train_idx, batch=global_batch, train=True, augment=settings.augment,
                         **options)
    val_ds = (_pipeline(x_train, y_train, val_idx, batch=global_batch, train=False, augment=False, **options)
              if len(val_idx) else None)
    meta = _model_meta(settings, dataset, base_meta, model, orientation, train_idx, val_idx)
    return _Prepared(model=model, history=list(state["history"]) if state else [], initial_epoch=initial_epoch,
                     steps=steps, replicas=replicas, global_batch=global_batch, orientation=orientation,
                     train_idx=train_idx, val_idx=val_idx, x_train=x_train, y_train=y_train,
                     pipeline_options=options, train_ds=train_ds, val_ds=val_ds, meta=meta)


def _build_model(settings: Settings, classes: int, base_meta: dict | None, state: dict | None, cpath: Path, strategy,
                 steps: int):
    """The compiled model to train: from the checkpoint when resuming, else the base model or a new one."""
    with _scope(strategy):
        if state:
            model = ckpt.load_checkpoint_model(cpath)
            model.optimizer.iterations.assign(int(state["epoch"]) * steps)  # schedule restarts at the epoch boundary
        else:
            if base_meta:
                model, _ = modelio.load_model(settings.base_model, compile=False)
            else:
                model = MODELS[settings.model_name](classes)
            _compile(model, settings, steps)
    fuse_batch_norm(model)  # before the first step traces the training function
    # Several steps per call fail inside Keras under tf.distribute strategies; those run on GPUs anyway.
    model.steps_per_execution = 1 if strategy else STEPS_PER_EXECUTION
    return model


def _model_meta(settings: Settings, dataset, base_meta: dict | None, model, orientation: str, train_idx,
                val_idx) -> dict:
    """What the model file says about itself: classes, orientation, framing, settings, data, parent."""
    import keras
    import numpy as np

    meta = {
        "format": 1, "model_name": settings.model_name, "split": dataset.split.name, "mapping": dataset.mapping,
        "orientation": orientation, "framing": _framing(np.asarray(dataset.x_train[np.sort(train_idx[:2000])])),
        "config": dataclasses.asdict(settings), "data": str(dataset.folder.resolve()),
        "synthetic": dataset.synthetic, "classes": dataset.classes, "params": int(model.count_params()),
        "train_samples": int(len(train_idx)), "validation_samples": int(len(val_idx)), "keras": keras.__version__,
    }
    if base_meta:
        meta["parent"] = {k: base_meta.get(k) for k in ("model_name", "test_accuracy", "history", "data")}
        meta["parent"]["path"] = settings.base_model
    return meta


def _calibration_images(settings: Settings, train_idx):
    """A seeded choice of up to ``CALIBRATION_IMAGES`` training images for ``_recalibrate``."""
    import numpy as np

    return np.random.default_rng(settings.seed).permutation(train_idx)[:CALIBRATION_IMAGES]


def _test(job: _Prepared, dataset, dry_run: bool) -> tuple[float, float, int]:
    """Loss and accuracy on the test part (its first 256 images in a dry run), and the images tested."""
    import numpy as np
    import tensorflow as tf

    test_idx = np.arange(len(dataset.y_test))[: DRY_RUN_SAMPLES if dry_run else None]
    x_test = tf.constant(np.ascontiguousarray(dataset.x_test))
    y_test = tf.constant(np.asarray(dataset.y_test, dtype=np.int32))
    test_ds = _pipeline(x_test, y_test, test_idx, batch=max(job.global_batch, 512), train=False, augment=False,
                        **job.pipeline_options)
    test_loss, test_accuracy = job.model.evaluate(test_ds, verbose=0)
    return float(test_loss), float(test_accuracy), int(len(test_idx))


def create_model(model_name: str, path_to_done_NN, part_for_samples=1.0, *, data=None, split=None, epochs=None,
                 batch_size=None, learning_rate=None, validation=None, augment=None, seed: int = 0,
                 distribute=None, resume=None, dry_run: bool = False, verbose: int = 1, overwrite: bool = False,
                 **_cli) -> dict:
    """Build the model called ``model_name``, train it, and save it to ``path_to_done_NN``.

    Args:
        model_name: a key of ``handwritten.models.MODELS`` (``model_1`` or ``model_2``).
        path_to_done_NN: where the trained model goes; ``.h5`` or ``.keras`` chooses the format.
        part_for_samples: fraction of the training data to use, in (0, 1]; an int k >= 2 means 1/k.
        data: data folder (default: ``./emnist``, then the user cache).
        split: EMNIST split (default: byclass when present, else inferred from the labels).
        epochs, batch_size, learning_rate, validation, augment: override the model's
            defaults in ``DEFAULTS``.
        seed: seeds the subset, the validation split, the shuffling, the augmentation and the
            initial weights: the same seed on the same machine trains the same weights.
        distribute: None, ``"mirrored"`` or ``"multiworker"`` (cluster from ``TF_CONFIG``).
        resume: None continues from a checkpoint if one is beside the output; True requires
            one; False ignores (and later replaces) it.
        dry_run: one epoch on 256 images, nothing saved: checks the whole path in seconds.
        verbose: 0 silent; 1 progress bars and epoch lines on stderr, summary on stdout.
        overwrite: allow ``path_to_done_NN`` to exist already, and replace it once training ends;
            without it, an existing file there is an error before any work.

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
                          overwrite=overwrite, text=_cli.get("text", True), resume_hint=_cli.get("resume_hint"),
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
    ``path_to_done_NN`` may exist already (``path_to_model`` itself included) only with ``overwrite=True``.

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
    if not dry_run:  # a dry run saves nothing
        lock.check_not_saved(out, settings.base_model, overwrite)
    claim = lock.OutputLock(out, command) if not dry_run and lock.writes_output() else contextlib.nullcontext()
    with claim:
        return _run(settings, out, dry_run=dry_run, **run)
