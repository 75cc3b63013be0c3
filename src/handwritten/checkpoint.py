"""What makes training survive a crash, Ctrl-C, and more than one device.

A checkpoint is a ``.keras`` file beside the output (``<out>.ckpt.keras``) holding the model,
its optimizer state (which includes the step counter that drives the learning-rate
schedule) and, as metadata, the completed epoch count, the history so far and the training
settings. It is written after every epoch to a temporary file and renamed over the old
one, so a SIGKILL at any moment leaves either the previous checkpoint or the new one.

On resume the model comes out of the checkpoint and the settings come out of its metadata,
never from the command line, so a resumed run cannot silently change shape.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
from pathlib import Path

from handwritten import modelio
from handwritten.errors import HandwrittenError

SUFFIX = ".ckpt.keras"
STRATEGIES = ("mirrored", "multiworker")


def checkpoint_path(out: str | os.PathLike) -> Path:
    """The checkpoint that belongs to the model file ``out``."""
    out = Path(out)
    return out.with_name(out.name + SUFFIX)


def save_checkpoint(model, path: Path, state: dict) -> Path:
    """Write model, optimizer state and ``state`` (epoch, history, settings) atomically."""
    return modelio.save_model(model, path, state)


def read_checkpoint(path: Path) -> dict | None:
    """The state stored in a checkpoint, or None when there is none."""
    if not path.is_file():
        return None
    try:
        state = modelio.read_meta(path)
    except (HandwrittenError, json.JSONDecodeError) as exc:
        raise HandwrittenError(f"{path}: unreadable checkpoint ({exc}); delete it or pass --restart") from None
    if "epoch" not in state or "settings" not in state:
        raise HandwrittenError(f"{path}: not a training checkpoint; delete it or pass --restart")
    return state


def load_checkpoint_model(path: Path):
    """The compiled model (with optimizer state) stored in a checkpoint."""
    import keras

    try:
        return keras.models.load_model(path, compile=True)
    except Exception as exc:  # Keras raises many types for a bad file; all mean the same here.
        raise HandwrittenError(f"{path}: checkpoint cannot be loaded ({type(exc).__name__}: {exc}); "
                               "delete it or pass --restart") from None


def remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files a killed process left while writing ``path``."""
    for tmp in path.parent.glob(f".{path.stem}.tmp*{path.suffix}"):
        with contextlib.suppress(OSError):
            tmp.unlink()


def make_strategy(kind: str | None):
    """The ``tf.distribute`` strategy for ``--distribute``; None trains on the default device.

    ``mirrored`` uses every GPU of this machine, or every logical CPU device when there is no
    GPU (which is how the tests run it); ``multiworker`` reads the cluster from ``TF_CONFIG``.
    """
    if kind is None:
        return None
    if kind not in STRATEGIES:
        raise HandwrittenError(f"unknown --distribute {kind!r}; choose one of: {', '.join(STRATEGIES)}")
    if kind == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise HandwrittenError("--distribute multiworker needs TF_CONFIG describing the cluster and this task "
                                   "(see the README: 'Several GPUs, several machines')")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise HandwrittenError(f"TF_CONFIG is not valid JSON ({exc})") from None
    import tensorflow as tf

    if kind == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if tf.config.list_logical_devices("GPU"):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.MirroredStrategy(devices=[d.name for d in tf.config.list_logical_devices("CPU")])


def is_chief(strategy) -> bool:
    """Whether this process writes checkpoints and models: always, except on non-chief workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


class LossGuard:
    """Notices a loss that became NaN or infinite, so that training stops and saves nothing of it.

    A diverged model predicts one class for everything and reports it with ``nan%``. The
    training loop asks ``check`` after each batch and epoch; the epoch in which the loss
    diverged is not completed, so the checkpoint of the last finite epoch is left as it is.
    """

    def __init__(self):
        self.epoch = None  # the epoch (counted from 1) in which the loss diverged
        self.loss = None

    def check(self, epoch: int, logs) -> bool:
        """Whether training must stop: the loss in ``logs`` (of ``epoch``, from 0) or an earlier one diverged."""
        loss = (logs or {}).get("loss")
        if self.epoch is None and loss is not None and not math.isfinite(float(loss)):
            self.epoch, self.loss = epoch + 1, float(loss)
        return self.epoch is not None

    def error(self, checkpoint: Path | None, completed: int, learning_rate: float) -> HandwrittenError:
        kept = (f"the checkpoint of epoch {completed} is kept at {checkpoint}"
                if completed and checkpoint is not None and checkpoint.is_file() else "no checkpoint was written")
        return HandwrittenError(
            f"training stopped: the loss became {self.loss} in epoch {self.epoch} (learning rate {learning_rate:g}); "
            f"no model saved, {kept}. Start over (--restart) with a lower --learning-rate")


class StopRequest:
    """Turns the first Ctrl-C into a request to stop after the current batch.

    The training loop checks ``requested`` after each batch; a second Ctrl-C interrupts at
    once. Signal handlers can only be installed from the main thread; elsewhere Ctrl-C keeps
    its default meaning.
    """

    def __init__(self, verbose: int = 1):
        self.requested = False
        self.verbose = verbose
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.verbose:
            print("\nstopping after this batch to save a checkpoint (Ctrl-C again to stop at once)",
                  file=sys.stderr, flush=True)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False
