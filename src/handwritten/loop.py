"""The training loop: the optimizer and its schedule, and one ``fit`` with the callbacks that
show a progress bar, honour Ctrl-C, record each epoch, stop early, write a checkpoint after each
epoch and stop on a diverging loss.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from handwritten import checkpoint as ckpt
from handwritten.settings import Settings

# Training steps run per call into the compiled graph: Keras's per-step Python work costs as much
# as a small model's step on a CPU. Batch callbacks (progress bar, Ctrl-C) then run every this many
# steps, about a second apart for model_1 on two cores. model_2 trained 1.29x the original way's
# samples/s with 8 and 1.44-1.66x with 32 (same process, interleaved); batches of 256 or 512 were
# no faster per image (their activations outgrow the caches), so the batch stays 128.
STEPS_PER_EXECUTION = 32


def compile_model(model, settings: Settings, steps_per_epoch: int) -> None:
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


def adapt_to_multiworker(model, strategy, batch) -> None:
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


def describe_epoch(entry: dict) -> str:
    keys = [("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")]
    parts = [f"{short} {entry[k]:.4f}" for k, short in keys if k in entry]
    return (f"epoch {entry['epoch']}: " + ", ".join(parts)
            + f", {entry['seconds']:.1f} s, {entry['samples_per_second']:.0f} samples/s")


class TrainingLoop:
    """One ``fit`` of ``model`` from the epoch a checkpoint left off, and what happens around each epoch.

    ``history`` (the entries of completed epochs, also those before a resume) grows in place;
    ``meta`` is the model's metadata, saved in every checkpoint; ``saves`` is whether this
    process writes checkpoints (the chief, outside a dry run); ``stopped`` whether early stopping
    already ended the run (possibly before a crash and this resume).
    """

    def __init__(self, model, settings: Settings, *, steps: int, train_samples: int, history: list, meta: dict,
                 checkpoint, saves: bool, verbose: int, stopped: bool):
        self.model, self.settings, self.steps, self.train_samples = model, settings, steps, train_samples
        self.history, self.meta, self.checkpoint, self.saves = history, meta, checkpoint, saves
        self.verbose, self.stopped = verbose, stopped
        self.best = None  # (epoch, weights) of the best validation accuracy so far, with early stopping
        self.guard = ckpt.LossGuard()
        self.stop = ckpt.StopRequest(verbose)
        self.epoch, self.started, self.last_batch, self.bar = 0, 0.0, 0.0, None

    def checkpoint_state(self) -> dict:
        return {**self.meta, "history": self.history, "epoch": len(self.history),
                "settings": dataclasses.asdict(self.settings), "stopped_early": self.stopped}

    def fit(self, train_ds, val_ds, initial_epoch: int) -> float:
        """Train up to ``settings.epochs``; the seconds it took."""
        import keras

        callback = keras.callbacks.LambdaCallback(on_epoch_begin=self.on_epoch_begin,
                                                  on_epoch_end=self.on_epoch_end,
                                                  on_train_batch_end=self.on_train_batch_end)
        started = time.perf_counter()
        with self.stop:
            if initial_epoch < self.settings.epochs and not self.stopped:
                self.model.fit(train_ds, validation_data=val_ds, epochs=self.settings.epochs,
                               initial_epoch=initial_epoch, callbacks=[callback], verbose=0, shuffle=False)
        return time.perf_counter() - started

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm import tqdm

        self.started = self.last_batch = time.perf_counter()
        self.epoch = epoch
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.settings.epochs}", unit="batch",
                        file=sys.stderr, disable=self.verbose < 1, leave=False, mininterval=0.5, dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        self.last_batch = time.perf_counter()
        # ``batch`` is the last of the steps just run; Keras counts a whole last call of several steps.
        self.bar.update(min(batch + 1, self.steps) - self.bar.n)
        if logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}", acc=f"{float(logs['accuracy']):.4f}",
                                 refresh=False)
        if self.stop.requested or self.guard.check(self.epoch, logs):
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        import keras

        self.bar.close()
        if self.stop.requested or self.guard.check(epoch, logs):
            return  # an interrupted or diverged epoch is not a completed one
        now = time.perf_counter()
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        entry["seconds"] = round(now - self.started, 3)
        entry["samples_per_second"] = round(self.train_samples / max(self.last_batch - self.started, 1e-9), 1)
        entry["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.history.append(entry)
        if self.verbose:
            print(describe_epoch(entry), file=sys.stderr, flush=True)
        self._stop_early_when_stalled()
        if self.saves:
            ckpt.save_checkpoint(self.model, self.checkpoint, self.checkpoint_state())

    def _stop_early_when_stalled(self) -> None:
        history = self.history
        if self.settings.patience and "val_accuracy" in history[-1]:
            best = max(range(len(history)), key=lambda i: history[i]["val_accuracy"])
            if best == len(history) - 1:
                self.best = (best + 1, self.model.get_weights())
            elif len(history) - 1 - best >= self.settings.patience:
                self.model.stop_training = self.stopped = True

    def raise_if_cut_short(self, resume_hint: str | None) -> None:
        """After a diverged loss, the error; after Ctrl-C, a checkpoint, how to resume, and KeyboardInterrupt."""
        if self.guard.epoch:
            raise self.guard.error(self.checkpoint if self.saves else None, len(self.history),
                                   self.settings.learning_rate)
        if self.stop.requested:
            if self.saves:
                ckpt.save_checkpoint(self.model, self.checkpoint, self.checkpoint_state())
            hint = resume_hint or "call the same function again with the same arguments"
            print(f"interrupted: {len(self.history)} of {self.settings.epochs} epochs complete; checkpoint saved "
                  f"to {self.checkpoint}\nto resume: {hint}", file=sys.stderr, flush=True)
            raise KeyboardInterrupt

    def keep_best_weights(self) -> int:
        """The epoch whose weights the model keeps: early stopping restores the best validation epoch's."""
        if self.best and self.best[0] != len(self.history):
            self.model.set_weights(self.best[1])
            return self.best[0]
        return len(self.history)

