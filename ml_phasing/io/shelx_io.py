"""SHELX files that SHELXT/SHELXL take as they are: HKLF 4 .hkl, .ins and .res.

The .ins/.res headers come from ``iotbx.shelx.writer.generator`` (TITL, CELL,
ZERR, LATT, SYMM, SFAC, UNIT), which in cctbx 2025.11 needs
``full_matrix_least_squares_cycles=0`` and ``sort_scatterers=False`` and writes
no END (see the cctbx pitfalls); HKLF 4 and END are added here.
"""

from __future__ import annotations

import io
import re

from cctbx import xray
from cctbx.array_family import flex
from cctbx.eltbx import tiny_pse
from libtbx.utils import Sorry

from ml_phasing.io.atomic_io import atomic_path, write_text

VOLUME_PER_NON_H_ATOM = 18.0  # Angstrom^3 (Kempster & Lipson 1972), for estimating a composition


def parse_composition(text: str) -> dict:
    """'C10 N2 O2' (asymmetric unit) -> {'C': 10, 'N': 2, 'O': 2}."""
    out = {}
    for token in text.replace(",", " ").split():
        m = re.fullmatch(r"([A-Z][a-z]?)(\d*(?:\.\d+)?)", token)
        if not m:
            raise Sorry(f"composition: cannot read {token!r}; write e.g. C10 N2 O2.")
        try:
            tiny_pse.table(m.group(1))
        except RuntimeError:
            raise Sorry(f"composition: unknown element {m.group(1)!r}.") from None
        out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2) or 1)
    if not out:
        raise Sorry("composition is empty.")
    return out


def estimate_composition(crystal_symmetry) -> dict:
    """All-carbon asymmetric unit of 18 A^3 per atom, when the user gives none."""
    z = crystal_symmetry.space_group().order_z()
    n = max(1, round(crystal_symmetry.unit_cell().volume() / VOLUME_PER_NON_H_ATOM / z))
    return {"C": float(n)}


def check_composition(crystal_symmetry, composition: dict) -> None:
    z = crystal_symmetry.space_group().order_z()
    n = sum(v for e, v in composition.items() if e not in ("H", "D")) * z
    volume = crystal_symmetry.unit_cell().volume()
    if n <= 0 or not 5.0 <= volume / n <= 100.0:
        raise Sorry(
            f"The composition {composition} puts {n:.0f} non-H atoms in a {volume:.0f} A^3 cell "
            f"({volume / max(n, 1e-9):.1f} A^3 each; 5-100 is plausible)."
        )


def _structure_for(crystal_symmetry, composition: dict):
    scatterers = flex.xray_scatterer()
    for element, count in composition.items():
        for i in range(int(round(count))):
            scatterers.append(xray.scatterer(f"{element}{i + 1}", (0.1, 0.2, 0.3), u=0.05, scattering_type=element))
    return xray.structure(crystal_symmetry=crystal_symmetry, scatterers=scatterers)


def _header(xs, title: str, wavelength: float) -> list:
    from iotbx.shelx.writer import generator

    lines = []
    for line in generator(
        xs, title=title, wavelength=wavelength, full_matrix_least_squares_cycles=0, sort_scatterers=False
    ):
        lines.append(line)
        if line.startswith("UNIT"):
            break
    return lines


def write_ins(path: str, crystal_symmetry, composition: dict, title: str, wavelength: float = 0.71073) -> None:
    """An .ins for SHELXT: TITL CELL ZERR LATT SYMM SFAC UNIT HKLF 4 END."""
    lines = _header(_structure_for(crystal_symmetry, composition), title, wavelength)
    write_text(path, "".join(lines) + "HKLF 4\nEND\n")


def write_res(path: str, structure, title: str, wavelength: float = 0.71073) -> None:
    """A .res with the given atoms (e.g. map peaks), isotropic, full occupancy."""
    from iotbx.shelx.writer import generator

    lines = list(
        generator(
            structure, title=title, wavelength=wavelength, full_matrix_least_squares_cycles=0, sort_scatterers=False
        )
    )
    text = "".join(lines).rstrip("\n") + "\nEND\n"
    if "HKLF" not in text:
        text = text.replace("\nEND\n", "\nHKLF 4\nEND\n")
    write_text(path, text)


def write_hkl(path: str, amplitudes) -> None:
    """HKLF 4: F^2 and sigma(F^2) = 2 F sigma(F), with the terminating 0 0 0 line."""
    f_sq = amplitudes.f_as_f_sq()
    buf = io.StringIO()
    f_sq.export_as_shelx_hklf(buf, normalise_if_format_overflow=True)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(buf.getvalue())
