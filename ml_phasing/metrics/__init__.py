"""cphasematch-style metrics: every prediction judged against the truth.

Phases and maps are compared after the best origin shift allowed by the space
group (continuous along polar axes, discrete otherwise; see
:mod:`ml_phasing.metrics.origin`) and the better of the two hands, so that a
shifted or inverted copy of a structure reads 0 degrees and CC 1.
"""

from ml_phasing.metrics.amplitudes import r_factor, r_factor_by_shell
from ml_phasing.metrics.maps import autocorrelation, compare_maps, map_cc, patterson_consistency, ssim3d
from ml_phasing.metrics.origin import Alignment, align
from ml_phasing.metrics.phases import phase_statistics, shell_edges

__all__ = [
    "Alignment",
    "align",
    "autocorrelation",
    "compare_maps",
    "map_cc",
    "patterson_consistency",
    "phase_statistics",
    "r_factor",
    "r_factor_by_shell",
    "shell_edges",
    "ssim3d",
]
