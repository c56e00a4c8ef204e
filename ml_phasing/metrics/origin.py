"""Origin shifts and hand: aligning a prediction to a reference before comparing.

Conventions: F(h) = sum_j f_j exp(+2 pi i h.x_j) (cctbx). Moving a structure by
t multiplies F(h) by exp(2 pi i h.t); inverting it (x -> -x + t_c, with t_c
from the space group's change-of-hand operator) turns F(h) into
conj(F(h)) exp(2 pi i h.t_c).

The best shift maximises the phased translation function
S(t) = sum_h w(h) cos(phi_ref - phi_pred + 2 pi h.t) over the shifts the space
group allows (``space_group_info.is_allowed_origin_shift``): S is evaluated
exactly on a grid by one FFT, the best allowed grid point is taken, and then
refined by Newton steps along the continuous (polar) directions, so a shift in
P1 is found to far below the grid spacing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from cctbx import sgtbx

_DENOMINATOR = 12  # discrete origin shifts of all space groups are multiples of 1/12 or coarser
_PROBE = 0.0137  # an irrational-looking step to detect continuous (polar) directions


@dataclass(frozen=True)
class OriginStructure:
    free_axes: tuple  # axes along which any shift is allowed (polar directions)
    discrete: np.ndarray  # (m, 3) allowed shifts along the other axes (free axes set to 0)
    hand_translation: tuple | None  # t_c of x -> -x + t_c, or None when there is no other hand


@functools.lru_cache(maxsize=256)
def _origin_structure(hall_symbol: str) -> OriginStructure:
    sgi = sgtbx.space_group_info(group=sgtbx.space_group(hall_symbol))
    tol = 1e-6
    free = tuple(
        i for i in range(3) if sgi.is_allowed_origin_shift(tuple(_PROBE if j == i else 0.0 for j in range(3)), tol)
    )
    values = [np.arange(_DENOMINATOR) / _DENOMINATOR if i not in free else np.array([0.0]) for i in range(3)]
    grid = np.stack(np.meshgrid(*values, indexing="ij"), -1).reshape(-1, 3)
    discrete = np.array([t for t in grid if sgi.is_allowed_origin_shift(tuple(t), tol)])
    sg_type = sgi.type()
    hand = None
    if not sgi.group().is_centric() and not sg_type.is_enantiomorphic():
        hand = tuple(sg_type.change_of_hand_op().c().t().as_double())
    return OriginStructure(free, discrete, hand)


def origin_structure(space_group_info) -> OriginStructure:
    """Which origin shifts and which hand a space group allows (cached)."""
    return _origin_structure(space_group_info.type().hall_symbol())


@functools.lru_cache(maxsize=256)
def _allowed_mask(hall_symbol: str, n: tuple) -> np.ndarray:
    s = _origin_structure(hall_symbol)
    mask = np.zeros(n, bool)
    for t in s.discrete:
        index = []
        for axis in range(3):
            if axis in s.free_axes:
                index.append(slice(None))
            else:
                k = t[axis] * n[axis]
                if abs(k - round(k)) > 1e-6:
                    break
                index.append(int(round(k)) % n[axis])
        else:
            mask[tuple(index)] = True
    return mask


@dataclass(frozen=True)
class Alignment:
    shift: tuple  # fractional origin shift applied to the prediction
    inverted: bool  # whether the prediction's hand was inverted
    score: float  # normalised phased-translation score at the optimum (1 = perfect)


def transform(h: np.ndarray, f: np.ndarray, shift, inverted: bool, hand_translation) -> np.ndarray:
    """Structure factors of the prediction after inversion (optional) and a shift."""
    h = np.asarray(h, float)
    out = np.asarray(f, complex)
    if inverted:
        out = np.conj(out) * np.exp(2j * np.pi * h @ np.asarray(hand_translation, float))
    return out * np.exp(2j * np.pi * h @ np.asarray(shift, float))


def _search_grid(h: np.ndarray) -> tuple:
    hmax = np.abs(h).max(axis=0)
    return tuple(int(_DENOMINATOR * np.ceil(max(2 * m + 2, _DENOMINATOR) / _DENOMINATOR)) for m in hmax)


def _best_shift(h, c, hall, free_axes):
    """Maximise Re sum c exp(2 pi i h.t) over allowed t; return (t, value)."""
    n = _search_grid(h)
    grid = np.zeros(n, complex)
    idx = np.mod(h.astype(int), n)
    np.add.at(grid, (idx[:, 0], idx[:, 1], idx[:, 2]), c)
    s = np.real(np.fft.ifftn(grid)) * np.prod(n)  # sum_h c exp(+2 pi i h.k/n)
    s = np.where(_allowed_mask(hall, n), s, -np.inf)
    k = np.unravel_index(int(np.argmax(s)), n)
    t = np.array(k, float) / np.array(n)
    if free_axes:
        t = _refine(h, c, t, list(free_axes))
    value = float(np.real(np.sum(c * np.exp(2j * np.pi * h @ t))))
    return t, value


def _refine(h, c, t, axes, iterations=8):
    """Newton steps on S(t) along the free axes (S is smooth; start is near the optimum)."""
    hf = h[:, axes] * 2 * np.pi
    for _ in range(iterations):
        z = c * np.exp(2j * np.pi * h @ t)
        grad = -(np.imag(z)[:, None] * hf).sum(0)
        hess = -(np.real(z)[:, None, None] * hf[:, :, None] * hf[:, None, :]).sum(0)
        try:
            step = -np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        if np.any(np.linalg.eigvalsh(hess) >= 0):  # not a maximum: take a small gradient step
            step = grad / (np.abs(np.diag(hess)).max() + 1e-30)
        step = np.clip(step, -0.02, 0.02)
        t = t.copy()
        t[axes] += step
        if np.abs(step).max() < 1e-9:
            break
    return t


def align(h, f_ref, f_pred, space_group_info=None, weights=None, search_hand: bool = True) -> Alignment:
    """Best allowed origin shift (and hand) of ``f_pred`` onto ``f_ref``.

    ``h``: (n, 3) Miller indices; ``f_ref``, ``f_pred``: complex structure
    factors on them; ``weights`` default |F_ref| |F_pred|.
    """
    sgi = space_group_info or sgtbx.space_group_info("P1")
    s = origin_structure(sgi)
    hall = sgi.type().hall_symbol()
    h = np.asarray(h, float)
    if h.size == 0:  # nothing to align (a flat predicted map has no phases): the identity, score 0
        return Alignment((0.0, 0.0, 0.0), False, 0.0)
    f_ref = np.asarray(f_ref, complex)
    f_pred = np.asarray(f_pred, complex)
    w = np.abs(f_ref) * np.abs(f_pred) if weights is None else np.asarray(weights, float)
    norm = float(np.sum(w)) or 1.0
    unit = lambda z: np.where(np.abs(z) > 0, z / np.where(np.abs(z) > 0, np.abs(z), 1), 0)  # noqa: E731
    best = None
    hands = [False, True] if (search_hand and s.hand_translation is not None) else [False]
    for inverted in hands:
        pred = transform(h, f_pred, (0, 0, 0), inverted, s.hand_translation)
        c = w * unit(f_ref) * np.conj(unit(pred))
        t, value = _best_shift(h, c, hall, s.free_axes)
        if best is None or value > best.score * norm + 1e-12:
            # S peaks where phi_pred - 2 pi h.t matches phi_ref: apply the shift -t.
            shift = np.mod(-t, 1.0)
            shift[shift > 1.0 - 1e-6] = 0.0
            best = Alignment(tuple(float(x) for x in shift), inverted, value / norm)
    return best
