"""One-dimensional powder patterns from a structure (Khaibrakhmanov's generator).

Intensity of each reflection: multiplicity x |F|^2 x Lorentz-polarisation
(1 + cos^2 2theta) / (sin^2 theta cos theta). Profile: pseudo-Voigt whose
FWHM follows Caglioti, H^2 = U tan^2 theta + V tan theta + W, with the axial-
divergence asymmetry of Berar & Baldinozzi (1993, J Appl Cryst 26:128).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cctbx import miller


@dataclass(frozen=True)
class PowderConfig:
    wavelength: float
    two_theta_min: float
    two_theta_max: float
    two_theta_step: float
    u: float
    v: float
    w: float
    eta: float
    asymmetry_1: float
    asymmetry_2: float

    @classmethod
    def from_phil(cls, p):
        return cls(
            p.wavelength,
            p.two_theta_min,
            p.two_theta_max,
            p.two_theta_step,
            p.u,
            p.v,
            p.w,
            p.eta,
            p.asymmetry_1,
            p.asymmetry_2,
        )

    def axis(self) -> np.ndarray:
        n = int(round((self.two_theta_max - self.two_theta_min) / self.two_theta_step)) + 1
        return self.two_theta_min + self.two_theta_step * np.arange(n)


def pattern(xs, config: PowderConfig) -> np.ndarray:
    """Intensity on ``config.axis()`` (degrees 2theta), float32, not normalised."""
    tt_max = np.radians(min(config.two_theta_max + 5.0, 179.0))
    d_min = config.wavelength / (2.0 * np.sin(tt_max / 2.0))
    ms = miller.build_set(xs.crystal_symmetry(), anomalous_flag=False, d_min=d_min)
    f = ms.structure_factors_from_scatterers(xs, algorithm="direct").f_calc()
    i = (np.abs(f.data().as_numpy_array()) ** 2) * f.multiplicities().data().as_numpy_array()
    theta = np.arcsin(config.wavelength / (2.0 * f.d_spacings().data().as_numpy_array()))
    lp = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    i = i * lp
    centre = np.degrees(2 * theta)
    tan = np.tan(theta)
    fwhm = np.sqrt(np.maximum(config.u * tan**2 + config.v * tan + config.w, 1e-8))
    x = config.axis()
    out = np.zeros_like(x)
    for c, h, ii, t in zip(centre, fwhm, i, tan):
        lo, hi = np.searchsorted(x, [c - 12 * h, c + 12 * h])
        if hi <= lo:
            continue
        dx = x[lo:hi] - c
        z = dx / h
        gauss = np.sqrt(4 * np.log(2) / np.pi) / h * np.exp(-4 * np.log(2) * z**2)
        lorentz = 2 / (np.pi * h) / (1 + 4 * z**2)
        profile = config.eta * lorentz + (1 - config.eta) * gauss
        za = dx / h
        fa = 2 * za * np.exp(-(za**2))
        fb = 2 * (2 * za**2 - 3) * fa
        asym = 1 + (config.asymmetry_1 * fa + config.asymmetry_2 * fb) / t
        out[lo:hi] += ii * profile * asym
    return out.astype(np.float32)
