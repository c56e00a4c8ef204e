"""Light atoms mirrored through heavy atoms (ml_phasing.phasing.heavy_atom_mirrors).

Physics checked: to first order in F_L/F_H a light atom and its image through the heavy atom
give the same amplitudes, so the mirrored model fits the data almost as well as the truth
(the false "solved" flags of benchmarks/solve.py heavy_1.0); the second-order difference is
enough for unmirror to put the atom back.
"""

import numpy as np
import pytest
from cctbx import crystal, xray
from cctbx.array_family import flex

from ml_phasing.metrics.atoms import atom_recovery
from ml_phasing.phasing import dual_space, figures_of_merit, heavy_atom_mirrors


def _structure(space_group, atoms):
    cs = crystal.symmetry(unit_cell=(9.0, 10.0, 11.0, 90, 101, 90), space_group_symbol=space_group)
    scatterers = flex.xray_scatterer(
        [
            xray.scatterer(label, site, u=2.0 / (8 * np.pi**2), scattering_type=label.rstrip("0123456789"))
            for label, site in atoms
        ]
    )
    return xray.structure(
        special_position_settings=cs.special_position_settings(min_distance_sym_equiv=0.5), scatterers=scatterers
    )


ATOMS = [
    ("Br1", (0.30, 0.25, 0.30)),
    ("C2", (0.45, 0.31, 0.28)),
    ("C3", (0.52, 0.42, 0.37)),
    ("N4", (0.40, 0.14, 0.43)),
    ("O5", (0.62, 0.47, 0.21)),
    ("C6", (0.21, 0.38, 0.16)),
]


def _r1(f_obs, xs):
    return figures_of_merit.figures(f_obs, dual_space.f_calc_of(xs, f_obs))["r1"]


@pytest.mark.parametrize("space_group", ["P1", "P 1 21 1"])
def test_a_light_atom_mirrored_through_the_bromine_is_put_back(space_group):
    truth = _structure(space_group, ATOMS)
    f_obs = abs(truth.structure_factors(d_min=1.0, algorithm="direct").f_calc()).set_observation_type_xray_amplitude()
    br = np.array(ATOMS[0][1])
    wrong = dual_space.moved(truth, 3, tuple(2 * br - np.array(ATOMS[3][1])))  # N4 through Br1
    wrong = dual_space.refine(wrong, f_obs)
    assert atom_recovery(truth, wrong.sites_frac())["fraction_matched"] < 1.0
    # first order: the mirrored model still reads like a solution (R1 under the flag's 0.15)
    assert 0.005 < _r1(f_obs, wrong) < 0.1

    def refine(m):
        return dual_space.refine(m, f_obs)

    def r1_of(m):
        return _r1(f_obs, m)

    fixed = heavy_atom_mirrors.unmirror(wrong, f_obs, refine, r1_of)
    assert atom_recovery(truth, fixed.sites_frac())["fraction_matched"] == 1.0
    assert r1_of(fixed) < 0.5 * r1_of(wrong)
    # the right model is left as it is (the same object)
    assert heavy_atom_mirrors.unmirror(truth, f_obs, refine, r1_of) is truth


def test_inversion_centres_are_the_heavy_atoms_and_midpoints_of_close_pairs():
    xs = _structure("P1", [("Br1", (0.1, 0.1, 0.1)), ("Cl2", (0.3, 0.1, 0.1)), ("C3", (0.5, 0.5, 0.5))])
    heavy = heavy_atom_mirrors.heavy_selection(xs)
    assert list(heavy) == [True, True, False]
    centres = [tuple(np.round(c, 6)) for c in heavy_atom_mirrors.inversion_centres(xs, heavy)]
    assert (0.1, 0.1, 0.1) in centres and (0.3, 0.1, 0.1) in centres
    assert (0.2, 0.1, 0.1) in centres  # the pair 1.8 A apart: its midpoint
    assert len(centres) == 3  # the other copies of the pair (a lattice translation away) are > 8 A


def test_no_heavy_atom_no_work():
    xs = _structure("P1", [(label, site) for label, site in ATOMS[1:]])
    f_obs = abs(xs.structure_factors(d_min=1.5).f_calc()).set_observation_type_xray_amplitude()
    assert heavy_atom_mirrors.best_mirror(xs, f_obs) is None
    calls = []
    assert heavy_atom_mirrors.unmirror(xs, f_obs, refine=calls.append, r1_of=calls.append) is xs
    assert calls == []
