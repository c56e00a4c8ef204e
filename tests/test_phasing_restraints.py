"""Geometry restraints (cctbx.geometry_restraints) and the polish step of the phasing engine."""

import boost_adaptbx.boost.python  # noqa: F401

import numpy as np
import pytest
from cctbx import crystal, xray
from cctbx.array_family import flex

from ml_phasing.metrics.atoms import atom_recovery
from ml_phasing.phasing import dual_space, figures_of_merit, restraints
from ml_phasing.sources.peptides import PeptidesConfig, make_structure


@pytest.fixture(scope="module")
def dialanine():
    cfg = PeptidesConfig(
        kind="dialanine",
        residues=("ALA",),
        files=(),
        cell_edge=10.0,
        min_image_distance=2.5,
        random_rotation=True,
        b_iso_min=5.0,
        b_iso_max=15.0,
    )
    return make_structure(cfg, np.random.default_rng(11), None)[0]


def test_ideal_geometry_meets_every_restraint_and_a_stretched_bond_does_not(dialanine):
    """The generator's ideal dialanine (Engh & Huber geometry) lies inside every flat bottom;
    pulling one atom 0.6 A away from its bonded neighbour breaks a restraint by about that much."""
    ideal = restraints.deviations(dialanine)
    # 9 bonds, 11 angles (1-3 distances) in dialanine's 10 heavy atoms
    assert ideal["n_restraints"] == 20
    assert ideal["max"] < 1e-6 and ideal["residual"] < 1e-6
    stretched = dialanine.deep_copy_scatterers()
    sites = stretched.sites_cart()
    labels = [sc.label for sc in stretched.scatterers()]
    o, c = labels.index("ALA1:O"), labels.index("ALA1:C")
    bond = np.subtract(sites[o], sites[c])
    sites[o] = tuple(np.add(sites[o], 0.6 * bond / np.linalg.norm(bond)))
    stretched.set_sites_cart(sites)
    manager = restraints.manager_for(dialanine)  # connectivity of the ideal model, geometry of the stretched one
    dev = restraints.deviations(stretched, manager)
    # C=O is 1.23 A; 1.83 A is 0.18 A beyond the 1.65 A top of the flat bottom, and the 1-3 distances grow too
    assert 0.15 < dev["max"] < 0.6


def test_restraint_gradients_in_fractional_coordinates_match_finite_differences(dialanine):
    shaken = dialanine.deep_copy_scatterers()
    shaken.shake_sites_in_place(mean_distance=0.25, random_double=flex.random_double)
    manager = restraints.manager_for(shaken)
    e = restraints.energies(manager, shaken.sites_cart())
    analytic = e.gradients * shaken.unit_cell().orthogonalization_matrix()
    frac = shaken.sites_frac()
    h = 1e-6
    for i in range(0, frac.size(), 3):
        for k in range(3):
            numeric = []
            for sign in (1, -1):
                moved = frac.deep_copy()  # flex.vec3_double(frac) would share frac's memory
                site = list(moved[i])
                site[k] += sign * h
                moved[i] = tuple(site)
                numeric.append(restraints.energies(manager, shaken.unit_cell().orthogonalize(moved), False).target)
            fd = (numeric[0] - numeric[1]) / (2 * h)
            assert fd == pytest.approx(analytic[i][k], rel=1e-3, abs=1e-2)


def test_a_bond_across_a_symmetry_operator_is_restrained():
    """Two atoms in P21 whose only bond is to the other's screw-axis mate: the asu-mapped pair
    tables find it, as they would for a molecule on a special position or across the cell edge."""
    cs = crystal.symmetry(unit_cell=(6, 7, 8, 90, 100, 90), space_group_symbol="P 1 21 1")
    a = (0.1, 0.2, 0.3)
    mate = cs.space_group()(1) * a  # (-x, y+1/2, -z)
    # b sits 1.5 A from a's mate and far from a itself
    mate_cart = np.array(cs.unit_cell().orthogonalize(mate))
    b = cs.unit_cell().fractionalize(tuple(mate_cart + [1.5, 0, 0]))
    xs = xray.structure(
        crystal_symmetry=cs,
        scatterers=flex.xray_scatterer([xray.scatterer("C1", a, u=0.1), xray.scatterer("C2", b, u=0.1)]),
    )
    assert cs.unit_cell().distance(a, b) > 2.5
    dev = restraints.deviations(xs)
    assert dev["n_restraints"] >= 1 and dev["max"] < 1e-6
    squeezed = xs.deep_copy_scatterers()
    squeezed.scatterers()[1].site = cs.unit_cell().fractionalize(tuple(mate_cart + [0.9, 0, 0]))
    # 0.9 A is 0.25 A below the 1.15 A bottom of the C-C range
    assert restraints.deviations(squeezed, restraints.manager_for(xs))["max"] == pytest.approx(0.25, abs=1e-6)


def test_restrained_refinement_keeps_bonds_that_free_refinement_lets_drift(dialanine):
    """From a model shaken by 0.3 A against 1.5 A data, restraints keep every bond and angle
    distance nearer its range than unrestrained least squares does."""
    f_obs = abs(dialanine.structure_factors(d_min=1.5).f_calc()).set_observation_type_xray_amplitude()
    shaken = dialanine.deep_copy_scatterers()
    flex.set_random_seed(3)
    shaken.shake_sites_in_place(mean_distance=0.3, random_double=flex.random_double)
    manager = restraints.manager_for(dialanine)
    free = dual_space.refine(shaken, f_obs, iterations=10)
    restrained = dual_space.refine(shaken, f_obs, iterations=10, restraints_weight=3.0)
    assert restraints.deviations(restrained, manager)["rms"] < restraints.deviations(free, manager)["rms"]


def test_polish_moves_a_misplaced_atom_to_where_the_difference_map_wants_it(dialanine):
    f_obs = abs(dialanine.structure_factors(d_min=1.5).f_calc()).set_observation_type_xray_amplitude()
    gridding = dual_space.gridding_for(f_obs)
    wrong = dialanine.deep_copy_scatterers()
    # the second residue's CB put 2 A off, on the far side from its CA
    labels = [sc.label for sc in wrong.scatterers()]
    cb, ca = labels.index("ALA2:CB"), labels.index("ALA2:CA")
    sites = wrong.sites_cart()
    away = np.subtract(sites[cb], sites[ca])
    sites[cb] = tuple(np.add(sites[cb], 2.0 * away / np.linalg.norm(away)))
    wrong.set_sites_cart(sites)
    wrong = dual_space.refine(wrong, f_obs)
    assert atom_recovery(dialanine, wrong.sites_frac())["fraction_matched"] < 1.0
    elements = [sc.scattering_type for sc in dialanine.scatterers()]
    polished = dual_space.polish(wrong, f_obs, gridding, elements)
    assert atom_recovery(dialanine, polished.sites_frac())["fraction_matched"] == 1.0
    r1 = [figures_of_merit.figures(f_obs, dual_space.f_calc_of(m, f_obs))["r1"] for m in (wrong, polished)]
    assert r1[1] < 0.5 * r1[0]
    # a right model is left as it is
    right = dual_space.refine(dialanine, f_obs)
    assert dual_space.polish(right, f_obs, gridding, elements) is right


def test_difference_peak_ratio_sees_one_wrong_atom(dialanine):
    f_obs = abs(dialanine.structure_factors(d_min=1.5).f_calc()).set_observation_type_xray_amplitude()
    right = figures_of_merit.difference_peak_ratio(f_obs, dialanine)
    wrong = dialanine.deep_copy_scatterers()
    wrong.scatterers()[4].site = tuple(np.add(wrong.scatterers()[4].site, (0.1, 0.0, 0.0)))  # 1 A
    assert right < 0.02
    assert figures_of_merit.difference_peak_ratio(f_obs, wrong) > 0.15


def test_an_atom_moved_off_a_special_position_gets_the_new_site_symmetry():
    """polish moves atoms; one on a C2 axis moved to a general site must not keep the axis
    (cctbx refused such a structure in refinement: 'Excessive special position correction')."""
    cs = crystal.symmetry(unit_cell=(8, 9, 10, 90, 105, 90), space_group_symbol="C 1 2 1")
    xs = dual_space.structure_from_peaks(cs, [(0.0, 0.25, 0.0), (0.2, 0.1, 0.3)], ["C", "O"], 5.0)
    assert xs.site_symmetry_table().is_special_position(0)
    moved = dual_space.moved(xs, 0, (0.18, 0.25, 0.68))
    assert moved.scatterers().size() == 2 and not any(
        moved.site_symmetry_table().is_special_position(i) for i in range(2)
    )
    assert sorted(sc.scattering_type for sc in moved.scatterers()) == ["C", "O"]
    f_obs = abs(xs.structure_factors(d_min=1.5).f_calc()).set_observation_type_xray_amplitude()
    dual_space.refine(moved, f_obs, iterations=3)


def test_planes_and_chirality_are_typed_from_the_connectivity(dialanine):
    """Anonymous peaks have no residue names, so centres are typed by their bond angles: the
    carbonyl C of the peptide bond (three neighbours, angles summing to 360 deg) keeps its
    plane, the two CA (sp3) keep the sign of their chiral volume. Ideal geometry meets both;
    an inverted CA or a carbonyl C pushed 0.3 A out of its plane does not."""
    manager = restraints.manager_for(dialanine)
    labels = [sc.label for sc in dialanine.scatterers()]
    planes = [[labels[i] for i in p.i_seqs] for p in manager.planarity_proxies]
    chirals = [[labels[i] for i in p.i_seqs] for p in manager.chirality_proxies]
    assert planes == [["ALA1:C", "ALA1:CA", "ALA1:O", "ALA2:N"]]
    assert sorted(c[0] for c in chirals) == ["ALA1:CA", "ALA2:CA"]
    ideal = restraints.energies(manager, dialanine.sites_cart(), compute_gradients=False).target
    assert ideal < 1e-6

    sites = np.array(dialanine.sites_cart())
    n, ca, c, cb = (labels.index(f"ALA1:{name}") for name in ("N", "CA", "C", "CB"))
    normal = np.cross(sites[n] - sites[ca], sites[c] - sites[ca])
    normal /= np.linalg.norm(normal)
    inverted = sites.copy()  # CB mirrored through the N-CA-C plane: the other hand at CA
    inverted[cb] -= 2 * np.dot(inverted[cb] - sites[ca], normal) * normal
    e = restraints.energies(manager, flex.vec3_double(inverted), compute_gradients=False)
    assert e.chirality_residual_sum > 100 and e.bond_residual_sum < 1e-6  # every distance kept

    o, n2 = labels.index("ALA1:O"), labels.index("ALA2:N")
    plane_normal = np.cross(sites[o] - sites[c], sites[n2] - sites[c])
    plane_normal /= np.linalg.norm(plane_normal)
    bent = sites.copy()
    bent[c] += 0.3 * plane_normal
    e = restraints.energies(manager, flex.vec3_double(bent), compute_gradients=False)
    assert e.planarity_residual_sum > 50
