"""Phase starts for the engine: any phase set becomes a :class:`Start`.

* :func:`random_starts`: random phases (restricted where the space group says so).
* :func:`charge_flipping_starts`: smtbx charge-flipping solutions, one per seed.
* :func:`p1_starts`: dual-space recycling in P1, then the space group's origin.
* :func:`patterson_starts`: Patterson seeds and their superposition maps, screened by fast
  strong-E recycling (:mod:`ml_phasing.phasing.patterson_seeds`).
* :func:`network_starts`: a Patterson-to-density model's prediction from each proper
  grid rotation of the Patterson, each in both hands.
* :func:`user_phases`: PHIB/FOM or map coefficients from the user's MTZ.
* :func:`extension_starts`: charge flipping on amplitudes extended by an
  ``extend_resolution`` model; the engine then fills the unmeasured shell from its model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cctbx.array_family import flex
from libtbx.utils import Sorry


@dataclass
class Start:
    kind: str  # random, charge_flipping, p1_dual_space, patterson, patterson_to_density, intensity_to_density,
    # phases, extend_resolution
    label: str  # e.g. "rotation 3, inverted hand"
    phases: np.ndarray  # radians, on the engine's f_obs indices


def _restricted(f_obs, phases: np.ndarray) -> np.ndarray:
    """Phases obeying the space group's restrictions (centric reflections: phi or phi + pi)."""
    source = f_obs.customized_copy(data=flex.polar(flex.double(f_obs.size(), 1.0), flex.double(phases)), sigmas=None)
    restricted = f_obs.phase_transfer(phase_source=source, deg=False)
    return flex.arg(restricted.data()).as_numpy_array()


def on_indices(array, f_obs) -> np.ndarray:
    """Phases (radians) of a complex array on the indices of f_obs; 0 where absent."""
    array = array.map_to_asu()
    lookup = dict(zip(array.indices(), flex.arg(array.data())))
    return np.array([lookup.get(h, 0.0) for h in f_obs.indices()])


def random_starts(f_obs, n: int, rng: np.random.Generator):
    for i in range(n):
        yield Start("random", f"random phases {i + 1}", _restricted(f_obs, rng.uniform(-np.pi, np.pi, f_obs.size())))


def p1_starts(f_obs, composition: dict, n: int, rng: np.random.Generator, cycles: int = 30, connected: bool = False):
    """Dual-space from random phases in P1, then the origin most consistent with the space group
    (smtbx f_calc_symmetrisations) gives symmetric phases: as SHELXD/SHELXT and charge flipping
    do, because recycling in P1 escapes the false minima that trap it in centrosymmetric and
    other high-symmetry groups. In P1 itself these are plain random starts."""
    from cctbx import crystal, sgtbx

    from ml_phasing.prediction.density_prediction import symmetrise
    from ml_phasing.phasing import dual_space

    z = f_obs.space_group().order_z()
    if z == 1:
        yield from random_starts(f_obs, n, rng)
        return
    p1 = crystal.symmetry(f_obs.unit_cell(), space_group_info=sgtbx.space_group_info("P1"))
    f_p1 = f_obs.expand_to_p1().customized_copy(crystal_symmetry=p1).merge_equivalents().array()
    comp_p1 = {e: v * z for e, v in composition.items()}
    e_p1 = dual_space.e_values(f_p1)
    grid_p1 = dual_space.gridding_for(f_p1)
    for i in range(n):
        tr = dual_space.run(
            f_p1,
            rng.uniform(-np.pi, np.pi, f_p1.size()),
            comp_p1,
            rng=rng,
            cycles=cycles,
            e_obs=e_p1,
            gridding=grid_p1,
            completion_cycles=2,
            connected=connected,
            mirror_rounds=0,  # a start only: the trajectory in the space group does this
        )
        f_sym, _, cc = symmetrise(f_obs, tr.f_calc)
        yield Start(
            "p1_dual_space",
            f"P1 dual-space {i + 1} (CC {tr.figures.get('cc', 0):.0f}, symmetry CC {cc:.2f})",
            on_indices(f_sym, f_obs),
        )


def patterson_starts(
    f_obs, composition: dict, n: int, rng: np.random.Generator, trials: int = 6, hit_cc: float = 80.0, e_obs=None
):
    """Patterson-seeded starts (:mod:`ml_phasing.phasing.patterson_seeds`): each start screens up
    to ``trials`` superposition-map seeds with fast strong-E recycling (``dual_space.screen``,
    about 1 s each for 30 atoms in P212121) and yields the first that reaches CC ``hit_cc``
    (wrong ones end at CC 50-60), else the best; the engine then runs its full trajectory
    from those phases."""
    from ml_phasing.phasing import dual_space
    from ml_phasing.phasing.patterson_seeds import PattersonSeeder

    e_obs = e_obs if e_obs is not None else dual_space.e_values(f_obs)
    gridding = dual_space.gridding_for(f_obs)
    seeder = PattersonSeeder(e_obs)
    if not seeder.vectors:
        return
    for i in range(n):
        best = None
        for t in range(trials):
            f_map = seeder.start_coefficients(rng)
            f_map = f_map.customized_copy(crystal_symmetry=f_obs.crystal_symmetry()).map_to_asu()
            phases = _restricted(f_obs, on_indices(f_map, f_obs))
            cc, phases = dual_space.screen(f_obs, phases, composition, rng=rng, e_obs=e_obs, gridding=gridding)
            if best is None or cc > best[0]:
                best = (cc, t + 1, phases)
            if cc >= hit_cc:
                break
        cc, t, phases = best
        yield Start("patterson", f"Patterson seed {i + 1} (screen CC {cc:.0f}, trial {t} of {trials})", phases)


def interleaved(*generators):
    """Starts from several generators in turn (a, b, a, b, ...), until all are spent."""
    iterators = [iter(g) for g in generators]
    while iterators:
        for it in list(iterators):
            try:
                yield next(it)
            except StopIteration:
                iterators.remove(it)


def ab_initio_starts(
    f_obs, composition: dict, n: int, seed: int, rng: np.random.Generator, n_flipping: int = 2, patterson: bool = True
):
    """The default ab initio mix: charge flipping first, then Patterson-seeded, P1 dual-space and
    random starts in turn (P1 recycling solves the centrosymmetric groups that random starts in the
    group miss; Patterson seeds solve the large acentric cells that neither does)."""
    yield from charge_flipping_starts(f_obs, n_flipping, seed)
    others = [p1_starts(f_obs, composition, n, rng), random_starts(f_obs, n, rng)]
    if patterson:
        others.insert(0, patterson_starts(f_obs, composition, n, rng))
    yield from interleaved(*others)


def charge_flipping_starts(f_obs, n: int, seed: int, amplitudes=None, kind: str = "charge_flipping"):
    """smtbx charge flipping (``amplitudes`` may be extended data); failed runs give no start."""
    from ml_phasing.prediction.resolution_extension import charge_flip

    data = amplitudes if amplitudes is not None else f_obs
    for i in range(n):
        f_calc, info = charge_flip(data, seed=seed + i)
        if f_calc is not None:
            yield Start(
                kind,
                f"charge flipping seed {seed + i} (symmetry CC {info['symmetry_cc']:.2f})",
                on_indices(f_calc, f_obs),
            )


def network_starts(bundle, f_obs, device: str = "cpu", rotations: int = 24, hands: bool = True):
    """One start per proper grid rotation of the Patterson (and per hand)."""
    from ml_phasing.prediction import density_prediction as dp

    task = bundle.task
    patt, f_cut, f_p1 = task.network_input(f_obs)
    rots = dp.grid_rotations(patt.shape)[: max(1, rotations)]
    y = task.predict_maps(bundle.network, np.stack([dp.rotate_grid(patt, r) for r in rots]), device)
    for i, (m, r) in enumerate(zip(y, rots)):
        density = dp.unrotate_grid(m, r).astype(np.float64)
        try:
            f_pred, _, _ = dp.symmetrise(f_cut, task.structure_factors(density, f_p1))
        except Sorry:  # no origin of the space group fits this prediction: no start from it
            continue
        phases = on_indices(f_pred, f_obs)
        yield Start("patterson_to_density", f"network, grid rotation {i + 1}", phases)
        if hands:
            inverted = on_indices(
                f_pred.customized_copy(data=flex.conj(f_pred.data()))
                if f_obs.space_group().is_centric() is False
                else f_pred,
                f_obs,
            )
            yield Start("patterson_to_density", f"network, grid rotation {i + 1}, other hand", inverted)


def prediction_starts(f_pred, f_obs, rng: np.random.Generator, kind: str, label: str, hands: bool = True):
    """A start from one predicted phase set (an intensity-to-density model's, say), and its
    other hand: the phases where the prediction has the reflection, random phases (obeying the
    space group's restrictions) on the rest of the data, which the engine then phases."""
    predicted = set(f_pred.map_to_asu().indices())
    fill = rng.uniform(-np.pi, np.pi, f_obs.size())
    have = np.array([h in predicted for h in f_obs.indices()])
    phases = np.where(have, on_indices(f_pred, f_obs), fill)
    yield Start(kind, f"{label} ({int(have.sum())} of {f_obs.size()} phases predicted)", _restricted(f_obs, phases))
    if hands and not f_obs.space_group().is_centric():
        yield Start(kind, f"{label}, other hand", _restricted(f_obs, np.where(have, -phases, fill)))


def user_phases(path: str, f_obs, labels: str | None = None):
    """A start from the user's phases: map coefficients (FWT,PHWT ...) or a phase column (PHIB)."""
    from ml_phasing.io import reflection_io

    arrays = reflection_io.read_arrays(path)
    if labels:
        wanted = labels.split(",")[0].strip()
        complex_arrays = [a for a in arrays if a.is_complex_array() and wanted in (a.info().labels or [])]
        if complex_arrays:
            array = complex_arrays[0]
        else:
            values = reflection_io.column_values(path, wanted, f_obs)
            if not np.isfinite(values).any():
                raise Sorry(f"Column {wanted} of {path} has no phases on the data's reflections.")
            return Start("phases", f"{path} {wanted}", np.deg2rad(np.nan_to_num(values)))
    else:
        array = reflection_io.auto_array(arrays, "complex", path)
        if array is None:
            import iotbx.mtz

            try:
                columns = {c.label(): c.type() for c in iotbx.mtz.object(path).columns()}
            except Exception:  # noqa: BLE001 - not an MTZ: no phase columns either
                columns = {}
            phase_cols = [k for k, t in columns.items() if t == "P"]
            if not phase_cols:
                raise Sorry(
                    f"{path} has no phases (no map coefficients and no phase column); "
                    f"available: {reflection_io.available_labels(arrays)}."
                )
            return user_phases(path, f_obs, phase_cols[0])
    label = array.info().label_string() if array.info() is not None else "phases"
    array = array.customized_copy(crystal_symmetry=f_obs.crystal_symmetry())
    if isinstance(array.data(), flex.complex_double) and flex.max(flex.abs(array.data())) <= 0:
        raise Sorry(f"The map coefficients in {path} are all zero.")
    return Start("phases", f"{path} {label}", on_indices(array, f_obs))
