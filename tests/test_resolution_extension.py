"""Library pieces of resolution extension: the shell-mean fill baseline and the R it reads."""

import numpy as np
import pytest

from ml_phasing.prediction import resolution_extension
from ml_phasing.examples.seeding import seed_everything
from ml_phasing.sources.random_atoms import RandomAtomsConfig, make_structure


@pytest.fixture(scope="module")
def f_true():
    cfg = RandomAtomsConfig(("P21",), ("C", "N", "O"), (3, 1, 1), 20, 20, 16, 20, 1.2, 1, 4)
    xs, _ = make_structure(cfg, seed_everything(5))
    return xs.structure_factors(d_min=1.0).f_calc().as_amplitude_array()


def test_shell_mean_fill_keeps_measured_and_fills_each_shell_with_its_rms(f_true):
    fill = resolution_extension.shell_mean_fill(f_true, 1.2)
    d = f_true.d_spacings().data().as_numpy_array()
    a, b = f_true.data().as_numpy_array(), fill.data().as_numpy_array()
    measured = d >= 1.2
    np.testing.assert_array_equal(b[measured], a[measured])
    outer_values = np.unique(b[~measured])
    assert 2 <= len(outer_values) <= 10  # one value per shell
    # Each shell's fill is the rms of its true amplitudes: the mean intensity is kept.
    for v in outer_values:
        sel = (~measured) & (b == v)
        assert np.sqrt(np.mean(a[sel] ** 2)) == pytest.approx(v, rel=1e-12)
    assert np.mean(b[~measured] ** 2) == pytest.approx(np.mean(a[~measured] ** 2), rel=1e-9)
    # ... and it carries no information on individual reflections: R ~ 0.4-0.5 for Wilson statistics.
    r = np.abs(b - a)[~measured].sum() / a[~measured].sum()
    assert 0.3 < r < 0.6
