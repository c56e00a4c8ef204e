"""Recognise input files by their content, never by trying to unpickle them.

iotbx's ``any_file`` and ``any_reflection_file`` sniff unknown files by trying
each reader in turn, pickle among them: a pickled file named ``data.mtz`` runs
its code before the program says it cannot read it. Every ml_phasing input goes
through :func:`detect` first, and each format is then read by its own reader
(:func:`reflection_file` for reflections, ``libtbx.phil.parse`` for PHIL).

Formats: ``mtz`` (magic ``MTZ ``), ``ccp4_map`` (``MAP `` at byte 208),
``pickle`` (protocol 2+ opcode, or a protocol 0/1 text pickle), ``zip`` (torch
model files), ``cif`` (``data_`` block), ``pdb`` (PDB records), ``phil``
(.eff/.phil/.params or text that parses as PHIL), ``shelx_hkl`` (fixed-format
h k l F² σ lines) and ``unknown``.
"""

from __future__ import annotations

import os
import re

from libtbx.utils import Sorry

PHIL_EXTENSIONS = (".eff", ".phil", ".params", ".def")
PDB_RECORDS = ("CRYST1", "ATOM  ", "HETATM", "HEADER", "REMARK", "MODEL ", "TITLE ", "COMPND", "SCALE1")
_HKL_LINE = re.compile(r"^\s*-?\d+\s+-?\d+\s+-?\d+\s+-?[\d.]+([eE][-+]?\d+)?\s+-?[\d.]+")


def _head(path: str, n: int = 4096) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def is_pickle(head: bytes) -> bool:
    """A pickle of protocol 2 or newer starts with PROTO (0x80) and its version byte."""
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    # protocol 0/1 pickles of an object start with a GLOBAL or MARK opcode line "c<module>\n<name>\n"
    return bool(re.match(rb"^(\(|\x80)?c[A-Za-z_][\w.]*\n[\w.]+\n", head))


def detect(path: str) -> str:
    """The format of ``path`` from its first bytes (and extension only for PHIL)."""
    if not os.path.isfile(path):
        raise Sorry(f"File not found: {path}")
    head = _head(path)
    if head.startswith(b"MTZ "):
        return "mtz"
    if is_pickle(head):
        return "pickle"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(head) >= 212 and head[208:211] == b"MAP":
        return "ccp4_map"
    if b"\x00" in head:
        return "unknown"
    text = head.decode("latin-1")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if path.lower().endswith(PHIL_EXTENSIONS):
        return "phil"
    if lines and lines[0].lstrip().lower().startswith("data_"):
        return "cif"
    if any(ln.startswith(PDB_RECORDS) for ln in lines[:50]):
        return "pdb"
    if lines and all(_HKL_LINE.match(ln) for ln in lines[:20]):
        return "shelx_hkl"
    return "unknown"


def refuse_pickle(path: str, role: str = "input") -> None:
    """A Sorry for a pickled file, before any reader touches it."""
    if os.path.isfile(path) and is_pickle(_head(path)):
        raise Sorry(
            f"{path} is a Python pickle, not a valid {role} file; pickles are never loaded (they can run code)."
        )


def reflection_file(path: str, symmetry=None):
    """An iotbx ``any_reflection_file`` for an MTZ, reflection CIF or SHELX file, read by its own reader.

    Never falls back to iotbx's try-everything sniffing (which tries pickle).
    """
    from iotbx.reflection_file_reader import any_reflection_file

    kind = detect(path)
    if kind == "pickle":
        refuse_pickle(path, "reflection")
    obj = any_reflection_file.__new__(any_reflection_file)
    obj._file_name = path
    obj._observation_type = None
    if kind == "mtz":
        import iotbx.mtz

        obj._file_type, obj._file_content = "ccp4_mtz", iotbx.mtz.object(file_name=path)
    elif kind == "cif":
        from iotbx.cif import reader as cif_reader

        content = cif_reader(file_path=path)
        if not any("_refln_index_h" in b or "_refln.index_h" in b for b in content.model().values()):
            raise Sorry(f"{path} is a CIF without reflections (no _refln loop).")
        obj._file_type, obj._file_content = "cif", content
    elif kind == "shelx_hkl":
        from iotbx.shelx import hklf

        obj._observation_type = "intensities"
        obj._file_type, obj._file_content = "shelx_hklf", hklf.reader(file_name=path)
    else:
        what = {"ccp4_map": "a CCP4 map", "zip": "a zip/torch file", "pdb": "a PDB model", "phil": "a PHIL file"}.get(
            kind, "not a recognised reflection format"
        )
        raise Sorry(
            f"{path} is {what}; reflections are read from MTZ, reflection CIF (_refln) or SHELX HKLF 4 .hkl files."
        )
    return obj


def parse_phil_file(path: str):
    """A PHIL file, parsed as text (a malformed file is a Sorry, not 'unused')."""
    import libtbx.phil

    if detect(path) == "pickle":
        refuse_pickle(path, "PHIL")
    try:
        with open(path) as f:
            text = f.read()
        return libtbx.phil.parse(text, source_info=path, process_includes=True)
    except UnicodeDecodeError:
        raise Sorry(f"{path} is not a text PHIL file.") from None
    except RuntimeError as e:
        raise Sorry(f"Cannot parse PHIL file {path}: {e}") from None
