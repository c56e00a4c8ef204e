"""ml_phasing.solve: observed amplitudes -> phase starts -> dual-space engine -> a refined structure."""

from __future__ import annotations

import json
import os

import numpy as np
from libtbx.program_template import ProgramTemplate
from libtbx.utils import Sorry

from ml_phasing.io import reflection_io
from ml_phasing.citations import scope as citation_scope
from ml_phasing.io.atomic_io import write_text
from ml_phasing.phasing import composition as comp_mod
from ml_phasing.phasing import starts
from ml_phasing.phil.solve import phil_str
from ml_phasing.program_support import (
    input_file,
    log_header,
    logged,
    observed_amplitudes,
    print_notes,
    refuse_existing,
    resolve_device,
    ResultsMixin,
    symmetry_from_params,
)
from ml_phasing.version import __version__


class Program(ResultsMixin, ProgramTemplate):
    program_name = "ml_phasing.solve"
    version = __version__
    citations = citation_scope("shelxd", "pan2023", "charge_flipping", "sigmaa")
    known_article_ids = ["cctbx"]
    description = """
Solve a small-molecule or peptide structure from observed amplitudes: phase starts
go through dual-space recycling (peak search -> atoms -> random omission ->
phases, as SHELXD does) with least-squares refinement of sites and B against
|Fobs| (cctbx), and the best start by CC(Eo^2,Ec^2) and R1 is kept. A start is
called solved only when its figures of merit (no truth needed) meet the
calibrated criterion (engine.solved.*; docs/solve.md gives its precision).

Starts (seed=): auto uses a shipped Patterson-to-density model's predictions (each
grid rotation, both hands) where one serves the cell, else charge flipping and
random phases; patterson_to_density, extend_resolution, charge_flipping, random,
or phases (your own PHIB/FOM or map coefficients, phases.file=).

Outputs (output.prefix, default the input file's name + "_solve"):
  <prefix>.res        SHELXL-ready: CELL, LATT/SYMM, SFAC/UNIT, atoms, HKLF 4
  <prefix>.cif        small-molecule CIF (cell, symmetry, _atom_site loop)
  <prefix>.pdb        the atoms with CRYST1
  <prefix>.mtz        F,SIGF; FWT,PHWT (2mFo-DFc); PHIB,FOM; FC,PHIC (model)
  <prefix>_map.ccp4   the 2mFo-DFc map
  <prefix>.log, <prefix>.json (figures of merit of every start, the start
                      chosen, solved or not)
A run that finds no solution exits 0, says so, and still writes its best
attempt, marked unsolved in the JSON and in the file titles.

Examples:

  ml_phasing.solve data.mtz composition="C6 N2 O3"
  ml_phasing.solve data.hkl symmetry.unit_cell=7.1,9.3,11.2,90,101.2,90 \\
      symmetry.space_group=P21/c composition="C12 O2" nproc=2
  ml_phasing.solve dialanine.mtz seed=patterson_to_density composition="C6 N2 O3"
  ml_phasing.solve data.mtz seed=phases phases.file=data_p2d.mtz phases.labels=FWT,PHWT
  ml_phasing.solve data.mtz seed=random engine.max_starts=50 output.prefix=ab_initio
"""
    datatypes = ["miller_array", "phil"]
    master_phil_str = phil_str

    def validate(self):
        p = self.params
        path = input_file(self)
        self.input_path = path
        stem = os.path.splitext(os.path.basename(path))[0]
        self.prefix = p.output.prefix or f"{stem}_solve"
        self.outputs = [f"{self.prefix}{s}" for s in (".res", ".cif", ".pdb", ".mtz", "_map.ccp4", ".json")]
        refuse_existing(self.outputs + [f"{self.prefix}.log"], p.output.overwrite)
        self.device = resolve_device(p.device)
        sym = symmetry_from_params(p.symmetry)
        self.f_obs, self.input_info = observed_amplitudes(self, path, p.input.labels, sym)
        self.f_obs = reflection_io.cut_at(self.f_obs, p.d_min, self.input_info)
        if self.f_obs.size() < 10:
            raise Sorry(f"Only {self.f_obs.size()} usable reflections in {path}: too few to phase.")
        self.composition = comp_mod.for_cell(self.f_obs.crystal_symmetry(), p.composition)
        if p.seed == "phases" and not p.phases.file:
            raise Sorry("seed=phases needs phases.file= (an MTZ with phases or map coefficients).")
        self.start_phases = None
        if p.seed == "phases":
            self.start_phases = starts.user_phases(p.phases.file, self.f_obs, p.phases.labels)
        self.bundle = None
        self.seed_kind = p.seed
        self.notes = []
        if p.seed in ("auto", "patterson_to_density"):
            self._load_density_model(required=p.seed == "patterson_to_density")
        elif p.seed == "extend_resolution":
            from ml_phasing.models import model_file

            model = model_file.resolve(p.model, "extend_resolution", d_min_data=float(self.f_obs.d_min()))
            self.bundle = model_file.load_bundle(model, task="extend_resolution", device=self.device)
            self.bundle.check_supported(self.f_obs)
            self.model_path = model

    def _load_density_model(self, required: bool):
        from ml_phasing.models import model_file

        name = self.params.model
        if name in model_file.shipped_models("extend_resolution"):
            raise Sorry(
                f"model={name} is a shipped extend_resolution model; seed=patterson_to_density needs a "
                f"patterson_to_density model ({', '.join(model_file.shipped_models('patterson_to_density'))}), "
                "or use seed=extend_resolution."
            )
        path = model_file.resolve(name, "patterson_to_density")
        if not os.path.isfile(path):
            raise Sorry(f"Model file not found: {path}")
        bundle = model_file.load_bundle(path, task="patterson_to_density", device=self.device)
        try:
            bundle.check_supported(self.f_obs)
        except Sorry as e:
            if required:
                raise
            self.notes.append(
                f"No shipped model serves these data ({e}); running ab initio (charge flipping, then random phases)."
            )
            self.seed_kind = "ab_initio"
            return
        self.bundle, self.model_path = bundle, path
        self.seed_kind = "patterson_to_density"

    def _starts(self):
        p = self.params
        rng = np.random.default_rng([p.random_seed, 7])
        f = self.f_obs
        n = p.engine.max_starts
        if self.seed_kind == "patterson_to_density":
            # network and random starts in turn: the network's 48 starts are alike and can share one
            # near-miss (benchmarks/solve.py: 60% solved from the network alone, 80% from random starts)
            yield from starts.interleaved(
                starts.network_starts(self.bundle, f, self.device, rotations=24),
                starts.random_starts(f, n, rng),
            )
        elif self.seed_kind == "extend_resolution":
            from ml_phasing.prediction.resolution_extension import extend

            ext = extend(self.bundle, f, None, self.device)
            yield from starts.charge_flipping_starts(
                f, n, p.random_seed, amplitudes=ext["extended"], kind="extend_resolution"
            )
            yield from starts.random_starts(f, n, rng)
        elif self.seed_kind == "charge_flipping":
            yield from starts.charge_flipping_starts(f, n, p.random_seed)
        elif self.seed_kind == "random":
            yield from starts.random_starts(f, n, rng)
        elif self.seed_kind == "p1_dual_space":
            yield from starts.p1_starts(f, self.composition, n, rng)
        elif self.seed_kind == "patterson":
            yield from starts.patterson_starts(f, self.composition, n, rng)
        elif self.seed_kind == "phases":
            yield self.start_phases
            yield from starts.random_starts(f, n, rng)
        else:  # ab initio: charge flipping, then Patterson-seeded, P1 dual-space and random starts in turn
            yield from starts.ab_initio_starts(f, self.composition, n, p.random_seed, rng)

    def run(self):
        with logged(self, f"{self.prefix}.log"):
            self._run()

    def _run(self):
        from ml_phasing.phasing import solution

        p = self.params
        log_header(self, p.random_seed, self.device)
        out = self.logger
        i = self.input_info
        f = self.f_obs
        print(
            f"Read {i['n_reflections']} reflections from {i['file']} ({i['labels']}"
            f"{', French-Wilson' if i['intensities_converted'] else ''}), {f.space_group_info()}, "
            f"cell {tuple(round(x, 3) for x in f.unit_cell().parameters())} A, d_min {f.d_min():.2f} A",
            file=out,
        )
        print_notes(i["notes"], out)
        print(
            "Composition per asymmetric unit: "
            + " ".join(f"{e}{int(round(n))}" for e, n in self.composition.items())
            + ("" if p.composition else " (estimated: give composition=)"),
            file=out,
        )
        for note in self.notes:
            print(note, file=out)
        print(f"Starts: {self.seed_kind}" + (f" ({self.model_path})" if self.bundle is not None else ""), file=out)
        d_ext = None
        if self.seed_kind == "extend_resolution":
            d_ext = float(self.bundle.task.config["d_min_high"])
        settings = solution.settings_from_params(p.engine, d_min_extend=d_ext)
        result = solution.run(
            f,
            self.composition,
            self._starts(),
            settings,
            seed=p.random_seed,
            nproc=p.nproc,
            max_starts=p.engine.max_starts,
            log=out,
        )
        files = solution.write(self.prefix, f, result, self.program_name)
        for name in files:
            print(f"  wrote {name}", file=out)
        self.result = {
            "program": self.program_name,
            "version": __version__,
            "input": self.input_info,
            "composition": self.composition,
            "seed": self.seed_kind,
            **solution.summary(result, settings),
            "notes": self.notes,
            "files": files,
        }
        write_text(f"{self.prefix}.json", json.dumps(self.result, indent=2) + "\n")
        files.append(f"{self.prefix}.json")
