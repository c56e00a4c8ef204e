"""Run the engine for a program and write a solution: the files and JSON every program shares.

``ml_phasing.solve``, ``ml_phasing.patterson_to_density solve=True`` and
``ml_phasing.extend_resolution solve=True`` all end here, so their outputs are
the same: ``<prefix>.res``, ``.cif``, ``.pdb``, ``.mtz`` (F,SIGF; FWT,PHWT as
2mFo-DFc; PHIB,FOM; FC,PHIC), ``_map.ccp4`` and a JSON summary.
"""

from __future__ import annotations

import numpy as np
from cctbx import miller
from cctbx.array_family import flex

from ml_phasing.io import map_io
from ml_phasing.phasing import engine

SUFFIXES = (".res", ".cif", ".pdb", ".mtz", "_map.ccp4")


def settings_from_params(e, d_min_extend=None) -> engine.Settings:
    """engine.Settings from an engine { } PHIL extract (phil/solve.py)."""
    return engine.Settings(
        cycles=e.cycles,
        completion_cycles=e.completion_cycles,
        omit_fraction=e.omit_fraction,
        refine_every=e.refine_every,
        min_distance=e.min_distance,
        d_min_extend=e.d_min_extend if e.d_min_extend is not None else d_min_extend,
        connected=e.molecule,
        min_cc=e.solved.min_cc,
        max_r1=e.solved.max_r1,
        min_heavy_ratio=e.solved.min_heavy_ratio,
        min_atom_fraction=e.solved.min_atom_fraction,
        stop_when_solved=e.stop_when_solved,
        max_seconds=e.max_seconds,
        polish_rounds=e.polish_rounds,
        mirror_rounds=e.mirror_rounds,
        restraints_weight=e.restraints_weight,
    )


def run(
    f_obs, composition: dict, starts, settings: engine.Settings, *, seed: int, nproc: int, max_starts: int, log
) -> engine.Result:
    """The engine with a progress bar and a verdict in the log."""
    from ml_phasing.program_support import progress

    print(
        f"Engine: up to {max_starts} starts, {settings.cycles} dual-space cycles + {settings.completion_cycles} "
        f"completion cycles each{', molecular completion' if settings.connected else ''}; solved when CC >= "
        f"{settings.min_cc:.0f} and R1 <= {settings.max_r1:.2f}",
        file=log,
    )
    bar = progress(total=max_starts, desc="starts", unit="start")
    try:
        result = engine.solve(
            f_obs, composition, starts, settings, seed=seed, nproc=nproc, max_starts=max_starts, log=log, progress=bar
        )
    finally:
        bar.close()
    best = result.best
    verdict = "SOLVED" if result.solved else "NOT SOLVED"
    n = max(len(result.attempts), 1)
    print(
        f"\n{verdict}: best start {result.best_start.label}; CC {best.figures.get('cc', 0):.1f}, "
        f"R1 {best.figures['r1']:.3f}, {best.structure.scatterers().size()} atoms; {len(result.attempts)} starts "
        f"in {result.seconds:.1f} s ({result.seconds / n:.1f} s per start)",
        file=log,
    )
    if not result.solved:
        print(
            f"No start met the solved criterion (CC >= {settings.min_cc:.0f} and R1 <= {settings.max_r1:.2f}); "
            "the best attempt is written, marked unsolved.",
            file=log,
        )
    return result


def summary(result: engine.Result, settings: engine.Settings) -> dict:
    best = result.best
    n = max(len(result.attempts), 1)
    return {
        "solved": bool(result.solved),
        "criterion": {"min_cc": settings.min_cc, "max_r1": settings.max_r1},
        "best": {
            "start": result.best_start.label,
            "kind": result.best_start.kind,
            **{k: round(v, 4) for k, v in best.figures.items()},
            "n_atoms": int(best.structure.scatterers().size()),
            "mean_fom": float(np.mean(best.fom)),
        },
        "starts": result.attempts,
        "seconds": round(result.seconds, 2),
        "seconds_per_start": round(result.seconds / n, 2),
    }


def write(prefix: str, f_obs, result: engine.Result, program: str) -> list:
    """The solution's files (atomic writes); titles say whether it is solved."""
    from ml_phasing.io import shelx_io
    from ml_phasing.phasing import writers

    xs = result.best.structure
    title = f"{program} {'solved' if result.solved else 'UNSOLVED best attempt'}"
    fc = result.best.f_calc  # on the engine's f_obs, which is this f_obs
    assert fc.size() == f_obs.size() == len(result.best.fom)
    fom = flex.double(np.asarray(result.best.fom, dtype=float))
    coeffs = writers.two_mfo_dfc(f_obs, fc, fom)
    shelx_io.write_res(f"{prefix}.res", xs, title=title)
    writers.write_cif(f"{prefix}.cif", xs, title=title, solved=result.solved)
    writers.write_pdb(f"{prefix}.pdb", xs, title=title)
    phib = miller.array(f_obs, flex.arg(fc.data()) * float(180.0 / np.pi))
    columns = [(f_obs, "F"), (coeffs, "FWT"), (phib, "PHIB", "P"), (miller.array(f_obs, fom), "FOM", "W"), (fc, "FC")]
    map_io.write_mtz(f"{prefix}.mtz", columns, rename={"PHIFWT": "PHWT", "PHIFC": "PHIC"}, title=title)
    map_io.write_ccp4_map(f"{prefix}_map.ccp4", f_obs.unit_cell(), writers.map_on_grid(coeffs), title=title)
    return [f"{prefix}{s}" for s in SUFFIXES]
