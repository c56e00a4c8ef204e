"""Atomic writes: a file is either complete under its final name or absent.

Every output is written to a temporary name in the same directory and renamed
into place with :func:`os.replace`, so a killed run or a full disk never leaves
a partial file that looks complete.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def temporary_name(path: str) -> str:
    """A fresh hidden name beside ``path`` that keeps its extension."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    stem, ext = os.path.splitext(os.path.basename(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".partial{ext}", dir=directory)
    os.close(fd)
    return tmp


def publish(tmp: str, path: str) -> None:
    """Rename a finished temporary file into place with umask-respecting permissions."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def remove_stale(path: str) -> None:
    """Delete temporary files left beside ``path`` by a killed run."""
    import glob

    directory = os.path.dirname(os.path.abspath(path)) or "."
    stem, ext = os.path.splitext(os.path.basename(path))
    for tmp in glob.glob(os.path.join(directory, f".{stem}.*.partial{ext}")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary name keeps the final extension, because some writers (iotbx)
    choose the format from it.
    """
    tmp = temporary_name(path)
    try:
        yield tmp
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
