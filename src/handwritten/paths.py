"""What a path named by the user really is, said plainly before anything opens it.

``Path.is_file()`` answers False for a missing file, a folder, a FIFO and a symbolic link
loop alike, so a check built on it reports all four as "not found". Opening a FIFO for
reading blocks until something writes to it, so a FIFO must be refused before ``open``.
An empty path (most often a shell variable that was never set) is the current folder to
``Path``, so it is refused by name before it becomes one.
"""

from __future__ import annotations

import argparse
import errno
import os
import stat
from pathlib import Path

from handwritten.errors import DataError

KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


EMPTY = "is an empty path (an unset variable?)"


def is_empty(path: str | os.PathLike) -> bool:
    """Whether ``path`` is empty or blank, which ``Path`` would take for the current folder."""
    return not os.fspath(path).strip()


def check_given(path: str | os.PathLike, what: str, error: type[Exception] = DataError) -> None:
    """``error`` naming ``path`` as empty, and saying to give ``what``, when it is (see :func:`is_empty`)."""
    if is_empty(path):
        raise error(f"{os.fspath(path)!r} {EMPTY}: give {what}")


def argument(text: str) -> str:
    """An ``argparse`` type for a path argument: the text itself, refused when empty or blank."""
    if is_empty(text):
        raise argparse.ArgumentTypeError(f"{text!r} {EMPTY}")
    return text


def _stat(path: Path, what: str) -> tuple[os.stat_result | None, str | None]:
    """``path``'s stat (links followed), or None and what stopped it (``what`` names the path's kind)."""
    try:
        return path.stat(), None
    except FileNotFoundError:
        if path.is_symlink():
            return None, f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return None, f"{what} not found"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "is a symbolic link loop"
        if exc.errno == errno.ENOTDIR:
            return None, "not found (a part of the path is a file, not a folder)"
        return None, f"cannot be read ({exc.strerror})"


def file_problem(path: str | os.PathLike, what: str = "file") -> str | None:
    """Why ``path`` cannot be read as a regular file, as the end of a message; None when it can."""
    if is_empty(path):
        return EMPTY
    path = Path(path)
    st, problem = _stat(path, what)
    if problem:
        return problem
    if stat.S_ISDIR(st.st_mode):
        return f"is a folder, not a {what}"
    if not stat.S_ISREG(st.st_mode):
        return f"is not a regular file ({KINDS.get(stat.S_IFMT(st.st_mode), 'of an unknown kind')})"
    return None


def folder_problem(path: str | os.PathLike, what: str = "folder") -> str | None:
    """Why ``path`` is not a folder, as the end of a message; None when it is one."""
    if is_empty(path):
        return EMPTY
    path = Path(path)
    st, problem = _stat(path, what)
    if problem:
        return problem
    if not stat.S_ISDIR(st.st_mode):
        kind = "a file" if stat.S_ISREG(st.st_mode) else KINDS.get(stat.S_IFMT(st.st_mode), "not a file")
        return f"is {kind}, not a {what}"
    return None


def check_file(path: str | os.PathLike, what: str = "file", error: type[Exception] = DataError) -> Path:
    """``path`` as a Path when it is a regular file (or a link to one); ``error`` saying what it is otherwise."""
    problem = file_problem(path, what)
    if problem:
        raise error(f"{path}: {problem}")
    return Path(path)
