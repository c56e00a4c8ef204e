"""Atomic writes: a file is either complete under its final name or absent.

Every output is written to a temporary name in the same directory and renamed
into place with :func:`os.replace`, so a killed run or a full disk never leaves
a partial file that looks complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
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
def atomic_path(path: str, verify=None):
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    The temporary name keeps the final extension, because some writers (iotbx)
    choose the format from it. ``verify(tmp)``, where given, runs before the rename
    and raises :class:`IncompleteWrite` for a file that is not whole: iotbx's C++ map
    and MTZ writers do not report a full disk (a 8,192-byte map of 33,024 was renamed
    into place). An OSError gets ``path`` as its filename, so that the program's message
    names the output and not the temporary file.
    """
    tmp = temporary_name(path)
    try:
        yield tmp
        if verify is not None:
            verify(tmp)
        publish(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError):
            e.filename = path
        raise


class IncompleteWrite(OSError):
    """A writer finished without error but its file is not whole (a full disk, most often)."""

    def __init__(self, path: str, detail: str):
        super().__init__(errno.ENOSPC, f"incomplete file ({detail}; is the disk full?)", path)


def check_ccp4_map(tmp: str) -> None:
    """The size a CCP4/MRC map must have from its own header (1024 bytes + extended header +
    NC x NR x NS voxels of MODE's size)."""
    size = os.path.getsize(tmp)
    with open(tmp, "rb") as f:
        header = f.read(1024)
    if len(header) < 1024:
        raise IncompleteWrite(tmp, f"{size} bytes written, not even the 1024-byte header")
    nc, nr, ns, mode = struct.unpack("<4i", header[:16])
    (nsymbt,) = struct.unpack("<i", header[92:96])
    voxel = {0: 1, 1: 2, 2: 4, 6: 2, 12: 2}.get(mode, 4)
    expected = 1024 + nsymbt + nc * nr * ns * voxel
    if size != expected:
        raise IncompleteWrite(tmp, f"{size} of {expected} bytes written")


def check_mtz(tmp: str) -> None:
    """An MTZ that iotbx can read back with the reflections it should hold."""
    import iotbx.mtz

    try:
        iotbx.mtz.object(file_name=tmp)
    except (RuntimeError, ValueError) as e:
        raise IncompleteWrite(tmp, f"{os.path.getsize(tmp)} bytes written that iotbx cannot read back") from e


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a full disk raises OSError ENOSPC naming ``path``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def torch_save(obj, path: str) -> None:
    """``torch.save`` atomically. torch's own file writer reports a full disk as a RuntimeError
    ("basic_ios::clear: iostream error"), so the object is serialised in memory and the bytes
    are written by Python, which raises OSError ENOSPC."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes(path, buffer.getvalue())


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    write_bytes(path, text.encode("utf-8"))
