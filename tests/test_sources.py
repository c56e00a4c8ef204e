"""Structures from each source: random atoms, peptides (ideal and cut from files), user files."""

import glob
import os

import numpy as np
import pytest
from libtbx.utils import Sorry

from ml_phasing.sources import residue_geometry as rg
from ml_phasing.examples.seeding import seed_everything
from ml_phasing.sources import peptides, random_atoms, structure_files


def test_random_atoms_respect_parameters():
    cfg = random_atoms.RandomAtomsConfig(("P21", "C2"), ("C", "Br"), (1, 0), 10, 12, 16, 18, 1.4, 2, 3)
    for seed in range(5):
        xs, meta = random_atoms.make_structure(cfg, seed_everything(seed))
        assert str(xs.space_group_info()) in ("P 1 21 1", "C 1 2 1")
        assert 10 <= xs.scatterers().size() <= 12
        assert set(sc.scattering_type for sc in xs.scatterers()) == {"C"}  # Br has weight 0
        b = [sc.b_iso() for sc in xs.scatterers()]
        assert 2 - 1e-6 <= min(b) and max(b) <= 3 + 1e-6
        # No two atoms (symmetry mates included) closer than min_distance.
        asu = xs.asu_mappings(buffer_thickness=1.4)
        from cctbx import crystal

        pairs = crystal.pair_asu_table(asu_mappings=asu)
        pairs.add_all_pairs(distance_cutoff=1.4 - 1e-3)
        assert pairs.pair_counts().all_eq(0)
        assert 16 - 1e-6 <= meta["volume_per_atom"] <= 18 + 1e-6


PEPTIDE = dict(
    residues=rg.AMINO_ACIDS,
    files=(),
    cell_edge=12.0,
    min_image_distance=2.5,
    random_rotation=True,
    b_iso_min=5,
    b_iso_max=15,
)


@pytest.mark.parametrize("resname", rg.AMINO_ACIDS)
def test_ideal_residues_geometry(resname):
    rng = np.random.default_rng(0)
    atoms = rg.build_dipeptide(resname, resname, rng)
    names = [a[2] for a in atoms if a[1] == 1]
    assert names == rg.expected_atoms(resname)
    xyz = {(a[1], a[2]): a[4] for a in atoms}
    if resname != "GLY":  # L-amino acid: positive chiral volume at CA
        assert rg.chirality_volume(xyz[1, "N"], xyz[1, "CA"], xyz[1, "C"], xyz[1, "CB"]) > 2.0
    assert np.linalg.norm(xyz[1, "C"] - xyz[2, "N"]) == pytest.approx(1.329)
    # Every atom but N of residue 1 has a bonded neighbour at 1.2-1.9 A.
    pts = np.array([a[4] for a in atoms])
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(len(pts)) * 9
    assert np.all(d.min(1) < 1.9) and d.min() > 1.2


def test_ring_closure_of_ideal_aromatics():
    rng = np.random.default_rng(3)
    for res, a, b in (
        ("PHE", "CE1", "CZ"),
        ("PHE", "CE2", "CZ"),
        ("TYR", "CE2", "CZ"),
        ("HIS", "CE1", "NE2"),
        ("TRP", "CD1", "NE1"),
        ("TRP", "CZ3", "CH2"),
    ):
        xyz = {(x[1], x[2]): x[4] for x in rg.build_dipeptide(res, "ALA", rng)}
        assert 1.28 < np.linalg.norm(xyz[1, a] - xyz[1, b]) < 1.45, (res, a, b)


def test_placed_fragments():
    cfg = peptides.PeptidesConfig(kind="dipeptide", **PEPTIDE)
    rng = np.random.default_rng(5)
    for _ in range(10):
        xs, meta = peptides.make_structure(cfg, rng, None)
        assert str(xs.space_group_info()) == "P 1"
        assert xs.unit_cell().parameters() == pytest.approx((12, 12, 12, 90, 90, 90))
        com = np.array(xs.center_of_mass())
        np.testing.assert_allclose(com, [6, 6, 6], atol=1e-6)
        cart = np.array(xs.sites_cart())
        assert peptides.min_image_distance(cart, 12.0) >= 2.5
        assert not peptides.internal_clash(cart)


def test_dialanine_is_ten_atoms():
    cfg = peptides.PeptidesConfig(kind="dialanine", **dict(PEPTIDE, cell_edge=10.0))
    xs, meta = peptides.make_structure(cfg, np.random.default_rng(1), None)
    assert xs.scatterers().size() == 10 and meta["sequence"] == "ALA-ALA"


def test_fragment_too_big_for_cell_is_refused():
    cfg = peptides.PeptidesConfig(kind="dipeptide", **dict(PEPTIDE, residues=("TRP",), cell_edge=5.0))
    with pytest.raises(Sorry, match="cell_edge"):
        peptides.make_structure(cfg, np.random.default_rng(1), None)


def test_image_clash_detected():
    xyz = np.array([[0.5, 5, 5], [9.0, 5, 5]])
    assert peptides.min_image_distance(xyz, 10.0) == pytest.approx(1.5)


def test_fragments_from_real_pdb(realdata):
    files = sorted(glob.glob(os.path.join(realdata, "pdb", "*")))
    lib = peptides.FragmentLibrary(files, "dialanine", rg.AMINO_ACIDS)
    assert len(lib.fragments) > 50
    for frag in lib.fragments:
        assert [a[2] for a in frag] == ["N", "CA", "C", "O", "CB"] * 2
        assert {a[0] for a in frag} == {"ALA"}
        assert {a[3] for a in frag} <= {"C", "N", "O"}
        xyz = {(a[1], a[2]): a[4] for a in frag}
        assert np.linalg.norm(xyz[1, "C"] - xyz[2, "N"]) < 1.5
        assert rg.chirality_volume(xyz[1, "N"], xyz[1, "CA"], xyz[1, "C"], xyz[1, "CB"]) > 0
    lib = peptides.FragmentLibrary(files, "dipeptide", ("SER", "LEU", "ASN", "HIS"))
    for frag in lib.fragments:
        for seq in (1, 2):
            res = [a[0] for a in frag if a[1] == seq][0]
            assert res in ("SER", "LEU", "ASN", "HIS")
            assert [a[2] for a in frag if a[1] == seq] == rg.expected_atoms(res)


def test_file_without_residues(tmp_path):
    path = tmp_path / "water.pdb"
    path.write_text(
        "CRYST1   10.000   10.000   10.000  90.00  90.00  90.00 P 1\n"
        "HETATM    1  O   HOH A   1       1.000   1.000   1.000  1.00 10.00           O\nEND\n"
    )
    with pytest.raises(Sorry, match="No usable residue pairs"):
        peptides.FragmentLibrary([str(path)], "dialanine", rg.AMINO_ACIDS)


def test_real_cifs_read(realdata):
    for path in sorted(glob.glob(os.path.join(realdata, "cif", "*.cif"))):
        xs = structure_files.read_structure(path)
        assert xs.scatterers().size() > 0
        assert not any(sc.scattering_type in ("H", "D") for sc in xs.scatterers())


def test_pdb_without_symmetry(tmp_path):
    path = tmp_path / "nosym.pdb"
    path.write_text("ATOM      1  CA  ALA A   1       1.000   1.000   1.000  1.00 10.00           C\nEND\n")
    with pytest.raises(Sorry, match="no unit cell"):
        structure_files.read_structure(str(path))


def test_b_factors_drawn_like_real_fragments():
    """Issue 11: peptides.b_iso_distribution=pdb gives each fragment one B from the B of residue
    pairs in real PDB entries (clipped to b_iso_min..b_iso_max) and spreads side chains more."""
    import dataclasses

    from ml_phasing.examples.seeding import seed_everything

    base = peptides.PeptidesConfig("dialanine", ("ALA",), (), 10.0, 2.5, True, 5.0, 60.0)
    atoms = [("ALA", 1, name, "C", None) for name in ("N", "CA", "C", "O", "CB")] * 2
    uniform = peptides.draw_b(base, atoms, seed_everything(1))
    assert np.allclose(uniform, seed_everything(1).uniform(5.0, 60.0, size=10))  # unchanged default
    real = dataclasses.replace(base, b_iso_distribution="pdb", b_iso_spread=0.1)
    draws = np.array([peptides.draw_b(real, atoms, seed_everything(k)) for k in range(400)])
    assert draws.min() >= 5.0 and draws.max() <= 60.0
    fragment_b = np.median(draws, axis=1)
    assert 15.0 < np.median(fragment_b) < 25.0  # the real pairs' median mean B is 20.3 A^2
    side = draws[:, [4, 9]] / fragment_b[:, None] - 1
    main = draws[:, [0, 1, 2, 3]] / fragment_b[:, None] - 1
    assert 1.8 < side.std() / main.std() < 3.2


def test_real_dialanines_for_the_benchmarks(realdata):
    """The benchmarks' real fragments: 10 atoms each (dialanine), the entries' own B clipped to
    5-40 A^2, centred in 10 A P1 cells, reproducible from the seed."""
    paths = glob.glob(os.path.join(realdata, "pdb", "*"))
    a = peptides.real_dialanines(paths, 5, seed=3)
    b = peptides.real_dialanines(paths, 5, seed=3)
    assert len(a) == 5 and all(xs.scatterers().size() == 10 for xs in a)
    assert all(5.0 <= sc.b_iso() <= 40.0 + 1e-6 for xs in a for sc in xs.scatterers())
    assert [tuple(xs.sites_cart()[0]) for xs in a] == [tuple(xs.sites_cart()[0]) for xs in b]
    assert a[0].unit_cell().parameters()[:3] == (10.0, 10.0, 10.0)
