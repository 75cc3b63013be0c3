"""Claiming a training run's output before any work: one run per output, a writable folder, never the base model.

Two runs writing the same ``--out`` would share one checkpoint and each report success while
only the last model survives. A run therefore holds an exclusive ``flock`` on ``OUT.lock``
beside the output for as long as it runs; the file says who holds it (pid, host, command), so
a second run can name the first. The kernel drops the lock when its holder dies, however it
dies, so a lock file left by a killed run is stale by construction and simply taken over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

from handwritten.errors import HandwrittenError

SUFFIX = ".lock"


def lock_path(out: str | os.PathLike) -> Path:
    """The lock file of the output ``out``, beside the file a symbolic link points to."""
    out = Path(os.path.realpath(out))
    return out.with_name(out.name + SUFFIX)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        return f"process {info['pid']} on {info['host']} ({info['command']}), since {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"  # it has the file locked but has not written its details yet


class OutputLock:
    """An exclusive lock on ``OUT.lock``, held from ``__enter__`` to ``__exit__`` (errors and Ctrl-C too).

    Raises:
        HandwrittenError: another live process holds the lock; the message names it.
    """

    def __init__(self, out: str | os.PathLike, command: str | None = None):
        self.out = Path(out)
        self.path = lock_path(out)
        self.command = command or " ".join(sys.argv) or "python"
        self._fd = None

    def __enter__(self):
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise HandwrittenError(f"{self.out}: cannot create the lock file {self.path} ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise HandwrittenError(
                    f"{self.out}: another run is writing this output: {_holder(self.path)}; wait for it to finish, "
                    f"or choose another output (its lock: {self.path})") from None
            # The holder before us may have removed the file between our open and our lock:
            # a lock on a file no longer at that path guards nothing, so start again.
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            # Removed while still locked, so that nobody locks the file we are about to let go of.
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None
        return False


def check_writable(out: Path) -> None:
    """An error unless a file can be created (and removed) in the output's folder."""
    try:
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.probe"):
            pass
    except OSError as exc:
        raise HandwrittenError(f"{out}: cannot write in folder {out.parent} ({exc.strerror or exc})") from None


def check_not_saved(out: Path, base: str | os.PathLike | None, overwrite: bool) -> None:
    """An error if ``out`` already exists, unless ``overwrite``: a saved model is replaced only on
    purpose, and the model file training starts from (the same path, link or hard link) is named."""
    if overwrite or not (out.exists() or out.is_symlink()):
        return
    if base is not None:
        try:
            same = os.path.samefile(out, base)
        except OSError:
            same = os.path.realpath(out) == os.path.realpath(base)
        if same:
            raise HandwrittenError(f"{out}: is the model being fine-tuned ({base}); writing there would replace "
                                   "it. Give another --out, or --overwrite (overwrite=True) to replace it on purpose")
    raise HandwrittenError(f"{out}: already exists; the trained model would replace it. Give another --out, or "
                           "--overwrite (overwrite=True) to replace it on purpose")


def writes_output() -> bool:
    """Whether this process writes the output: all but the non-chief workers of a ``TF_CONFIG`` cluster.

    Decided from ``TF_CONFIG`` alone (as ``checkpoint.is_chief`` decides it from the strategy),
    so the output is claimed before TensorFlow starts.
    """
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        task, cluster = config.get("task") or {}, config.get("cluster") or {}
        kind, index = task.get("type"), int(task.get("index", 0))
    except (ValueError, AttributeError, TypeError):
        return True  # a bad TF_CONFIG is reported when the strategy is made
    if not kind or kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster
