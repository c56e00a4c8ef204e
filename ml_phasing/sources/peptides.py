"""Dipeptide fragments in P1 cubic cells (Pan et al., IUCrJ 2023).

Fragments are either cut from user PDB/mmCIF files with gemmi (adjacent,
peptide-bonded residue pairs; protein heavy atoms only; dialanine by truncation
at CB) or built from ideal geometry (:mod:`ml_phasing.sources.residue_geometry`). Each
is optionally given a random proper rotation, placed with its centre of mass at
the centre of a cubic P1 cell, and rejected if it comes closer than
``min_image_distance`` to its own periodic images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cctbx import adptbx, crystal, xray
from cctbx.eltbx import tiny_pse
from libtbx.utils import Sorry

from ml_phasing.sources import residue_geometry as rg

DIALANINE_ATOMS = ("N", "CA", "C", "O", "CB")
MAIN_CHAIN = ("N", "CA", "C", "O")
MAX_TRIES = 200
# Mean B (A^2) of the 151 residue pairs of the PDB entries in ../shared/realdata/pdb (1orc,
# 4oz7, 5e5z, 5i55, rnase_frag; protein heavy atoms, first model, no waters or ligands),
# quantiles 0, 5, ..., 100 %: peptides.b_iso_distribution=pdb draws a fragment's B from them.
REAL_PAIR_B_QUANTILES = (
    3.0, 12.1, 13.1, 14.3, 15.0, 15.8, 16.4, 17.0, 18.3, 19.4, 20.3,
    21.0, 22.6, 24.1, 24.3, 25.5, 26.6, 28.7, 36.0, 50.8, 96.1,
)  # fmt: skip


@dataclass(frozen=True)
class PeptidesConfig:
    kind: str
    residues: tuple
    files: tuple
    cell_edge: float
    min_image_distance: float
    random_rotation: bool
    b_iso_min: float
    b_iso_max: float
    b_iso_distribution: str = "uniform"
    b_iso_spread: float = 0.1

    @classmethod
    def from_phil(cls, p):
        residues = tuple(r.upper() for r in (p.residues or rg.AMINO_ACIDS))
        return cls(
            p.kind,
            residues,
            tuple(p.file or ()),
            p.cell_edge,
            p.min_image_distance,
            p.random_rotation,
            p.b_iso_min,
            p.b_iso_max,
            p.b_iso_distribution,
            p.b_iso_spread,
        )

    def validate(self):
        unknown = [r for r in self.residues if r not in rg.SIDE_CHAINS]
        if unknown:
            raise Sorry(f"peptides.residues: unknown residue names {unknown}; use three-letter codes.")
        if self.b_iso_min > self.b_iso_max:
            raise Sorry("peptides.b_iso_min is larger than b_iso_max.")


class FragmentLibrary:
    """Residue pairs cut from PDB/mmCIF files, in a fixed order."""

    def __init__(self, files, kind: str, residues):
        import gemmi

        self.fragments = []
        allowed = set(residues)
        for path in files:
            try:
                st = gemmi.read_structure(str(path))
            except (RuntimeError, ValueError, OSError) as e:
                raise Sorry(f"Cannot read model file {path}: {e}") from None
            if len(st) == 0:
                raise Sorry(f"Model file {path} contains no models.")
            st.setup_entities()
            st.remove_hydrogens()
            st.remove_ligands_and_waters()
            st.remove_alternative_conformations()
            for chain in st[0]:
                residues_ = list(chain)
                for a, b in zip(residues_, residues_[1:]):
                    frag = self._pair(a, b, kind, allowed)
                    if frag is not None:
                        self.fragments.append(frag)
        if not self.fragments:
            raise Sorry(
                "No usable residue pairs in the model files "
                f"({', '.join(map(str, files))}): need adjacent, peptide-bonded, complete "
                f"standard residues{' with CB' if kind == 'dialanine' else ''}."
            )

    @staticmethod
    def _pair(a, b, kind, allowed):
        if a.name not in rg.SIDE_CHAINS or b.name not in rg.SIDE_CHAINS:
            return None
        if kind == "dipeptide" and (a.name not in allowed or b.name not in allowed):
            return None
        try:
            if a["C"][0].pos.dist(b["N"][0].pos) > 1.5:
                return None
        except (IndexError, RuntimeError):
            return None
        atoms = []
        for seq, res in ((1, a), (2, b)):
            names = DIALANINE_ATOMS if kind == "dialanine" else rg.expected_atoms(res.name)
            present = {at.name: at for at in res}
            if any(n not in present for n in names):
                return None
            resname = "ALA" if kind == "dialanine" else res.name
            for n in names:
                at = present[n]
                atoms.append((resname, seq, n, at.element.name, np.array(at.pos.tolist())))
        return atoms


def _random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def min_image_distance(xyz: np.ndarray, edge: float) -> float:
    """Closest approach of a fragment to its periodic images in a cubic cell."""
    shifts = (
        np.array(
            [(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1) if (i, j, k) != (0, 0, 0)], float
        )
        * edge
    )
    images = xyz[None, :, :] + shifts[:, None, :]
    d = np.linalg.norm(xyz[None, :, None, :] - images[:, None, :, :], axis=-1)
    return float(d.min())


def internal_clash(xyz: np.ndarray, limit: float = 2.5, bond: float = 1.9) -> bool:
    """True when atoms more than three bonds apart come closer than ``limit``."""
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    n = len(xyz)
    adj = (d < bond) & ~np.eye(n, dtype=bool)
    reach = np.eye(n, dtype=bool)
    step = reach
    for _ in range(3):
        step = (step.astype(int) @ adj.astype(int)) > 0
        reach = reach | step
    return bool(np.any((d < limit) & ~reach))


def _centre(atoms, edge: float, rotation) -> np.ndarray:
    xyz = np.array([a[4] for a in atoms])
    mass = np.array([tiny_pse.table(a[3]).weight() for a in atoms])
    com = (xyz * mass[:, None]).sum(0) / mass.sum()
    xyz = xyz - com
    if rotation is not None:
        xyz = xyz @ rotation.T
    return xyz + edge / 2.0


def to_xray_structure(atoms, xyz, edge, b_values):
    cs = crystal.symmetry(unit_cell=(edge, edge, edge, 90, 90, 90), space_group_symbol="P1")
    scatterers = []
    for (resname, seq, name, element, _), site, b in zip(atoms, xyz, b_values):
        scatterers.append(
            xray.scatterer(
                label=f"{resname}{seq}:{name}",
                site=tuple(site / edge),
                u=adptbx.b_as_u(float(b)),
                occupancy=1.0,
                scattering_type=element,
            )
        )
    from cctbx.array_family import flex

    return xray.structure(crystal_symmetry=cs, scatterers=flex.xray_scatterer(scatterers))


def draw_b(config: PeptidesConfig, atoms, rng) -> np.ndarray:
    """Isotropic B of each atom: uniform, or one B per fragment from real PDB entries
    (REAL_PAIR_B_QUANTILES) with a per-atom spread that is larger for side chains."""
    if config.b_iso_distribution == "uniform":
        return rng.uniform(config.b_iso_min, config.b_iso_max, size=len(atoms))
    q = np.linspace(0.0, 1.0, len(REAL_PAIR_B_QUANTILES))
    b_fragment = float(np.clip(np.interp(rng.uniform(), q, REAL_PAIR_B_QUANTILES), config.b_iso_min, config.b_iso_max))
    spread = config.b_iso_spread * np.array([1.0 if a[2] in MAIN_CHAIN else 2.5 for a in atoms])
    b = b_fragment * (1.0 + spread * rng.standard_normal(len(atoms)))
    return np.clip(b, config.b_iso_min, config.b_iso_max)


def make_structure(config: PeptidesConfig, rng, library: FragmentLibrary | None):
    """One placed fragment as a P1 xray.structure, plus metadata."""
    for attempt in range(MAX_TRIES):
        if library is not None:
            k = int(rng.integers(len(library.fragments)))
            atoms = library.fragments[k]
        else:
            if config.kind == "dialanine":
                pair = ("ALA", "ALA")
            else:
                pair = tuple(config.residues[i] for i in rng.integers(len(config.residues), size=2))
            atoms = rg.build_dipeptide(pair[0], pair[1], rng)
            if internal_clash(np.array([a[4] for a in atoms])):
                continue
        rotation = _random_rotation(rng) if config.random_rotation else None
        xyz = _centre(atoms, config.cell_edge, rotation)
        if min_image_distance(xyz, config.cell_edge) < config.min_image_distance:
            continue
        b = draw_b(config, atoms, rng)
        xs = to_xray_structure(atoms, xyz, config.cell_edge, b)
        sequence = f"{atoms[0][0]}-{atoms[-1][0]}"
        return xs, {
            "source": "peptides",
            "sequence": sequence,
            "attempts": attempt + 1,
            "fragment_origin": "file" if library is not None else "ideal",
        }
    raise Sorry(
        f"peptides: no fragment fits a {config.cell_edge} A cell without coming closer than "
        f"{config.min_image_distance} A to its periodic images after {MAX_TRIES} tries; "
        "increase peptides.cell_edge."
    )


def real_dialanines(paths, n: int, seed: int, cell_edge: float = 10.0, b_range=(5.0, 40.0)) -> list:
    """Dialanine fragments cut from real PDB/mmCIF entries (peptide-bonded residue pairs with
    N, CA, C, O, CB; every residue truncated to alanine) with the entries' own B (clipped to
    ``b_range``), each given a random proper rotation and centred in a cubic P1 cell: the
    benchmarks' set of real fragments, never trained on. Up to ``n`` xray.structures, in an
    order fixed by ``seed``."""
    import gemmi

    frags = []
    for path in sorted(paths):
        st = gemmi.read_structure(str(path))
        st.setup_entities()
        st.remove_hydrogens()
        st.remove_ligands_and_waters()
        st.remove_alternative_conformations()
        for chain in st[0]:
            residues = list(chain)
            for a, b in zip(residues, residues[1:]):
                try:
                    if a["C"][0].pos.dist(b["N"][0].pos) > 1.5:
                        continue
                except (IndexError, RuntimeError):
                    continue
                atoms, bs = [], []
                for seq, r in ((1, a), (2, b)):
                    present = {at.name: at for at in r}
                    if any(x not in present for x in DIALANINE_ATOMS):
                        break
                    for x in DIALANINE_ATOMS:
                        at = present[x]
                        atoms.append(("ALA", seq, x, at.element.name, np.array(at.pos.tolist())))
                        bs.append(float(np.clip(at.b_iso, *b_range)))
                else:
                    frags.append((atoms, bs))
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.permutation(len(frags)):
        atoms, bs = frags[k]
        xyz = _centre(atoms, cell_edge, _random_rotation(rng))
        if min_image_distance(xyz, cell_edge) < 2.5:
            continue
        out.append(to_xray_structure(atoms, xyz, cell_edge, bs))
        if len(out) == n:
            break
    return out
