"""ml_phasing.extend_resolution: predict unmeasured high-resolution amplitudes and phase them."""

from __future__ import annotations

import json
import os

import numpy as np
from libtbx import Auto
from libtbx.program_template import ProgramTemplate

from ml_phasing.io import map_io
from ml_phasing.io import reflection_io
from ml_phasing.prediction import resolution_extension
from ml_phasing.io import shelx_io
from ml_phasing.io.atomic_io import write_text
from ml_phasing.phil.extend_resolution import phil_str
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
from ml_phasing.citations import scope as citation_scope
from ml_phasing.version import __version__


class Program(ResultsMixin, ProgramTemplate):
    program_name = "ml_phasing.extend_resolution"
    version = __version__
    citations = citation_scope("khaibrakhmanov2025", "charge_flipping", "shelxd")
    known_article_ids = ["cctbx"]
    description = """
Predict the amplitudes a crystal would show beyond its measured resolution
(Khaibrakhmanov thesis), so that a classical ab initio method can phase them.

The measured amplitudes (intensities via French-Wilson) pass through
unchanged; every other reflection of the asymmetric unit to d_min_target gets
a predicted amplitude with an uncertainty (the model's validation R times the
amplitude); systematic absences are never written. The network sees the data
to the resolution it was trained on (its d_min_low); measured reflections
beyond that are kept as measured, not predicted. Data that already reach the
target are refused: there is nothing to predict. solve=True runs the phasing
engine (as ml_phasing.solve) from charge flipping on the extended data, the
unmeasured shell filled from its model each cycle (or, with solve_data=measured,
ab initio on the measured data alone: the baseline). By default (solve=Auto) it
runs when composition= gives the cell's contents.

Outputs (output.prefix, default the input name + "_ext"):
  <prefix>.mtz   F,SIGF (measured, unchanged), F_EXT,SIGF_EXT (all reflections to
                 d_min_target), PREDICTED (1 = predicted, 0 = measured)
  <prefix>.hkl   SHELX HKLF 4 (F^2, sigma), <prefix>.ins beside it: run shelxt <prefix>
  with the engine: its refined structure, as ml_phasing.solve
                 writes it: <prefix>_solve.res/.cif/.pdb/.mtz/_map.ccp4
  <prefix>.log, <prefix>.json

Models: model= a file from ml_phasing.train (task=extend_resolution) or a shipped
model's name; by default the shipped model that fits the data: extend_1.2_to_1.0A
(data to 1.2 A) or extend_1.5_to_0.8A (data to 1.5 A, or d_min_target below 1.0 A).
How well they do (amplitude R, charge-flipping success): docs/models.md.

Examples:

  ml_phasing.extend_resolution data.mtz
  ml_phasing.extend_resolution data.mtz composition="C10 N2 O2"
  ml_phasing.extend_resolution data.mtz model=extend_1.5_to_0.8A output.prefix=ext08
  ml_phasing.extend_resolution data.mtz solve=True solve_data=measured output.prefix=baseline
  ml_phasing.extend_resolution data.mtz model=ext_model.pt d_min_target=0.85
"""
    datatypes = ["miller_array", "phil"]
    master_phil_str = phil_str

    def validate(self):
        from ml_phasing.models import model_file  # torch: only when a network runs

        path = input_file(self)
        self.input_path = path
        stem = os.path.splitext(os.path.basename(path))[0]
        self.prefix = self.params.output.prefix or f"{stem}_ext"
        outs = [f"{self.prefix}{s}" for s in (".mtz", ".hkl", ".ins", ".json")]
        self.solve_was_auto = self.params.solve is Auto
        if self.params.solve is Auto:  # the engine runs where it knows the cell's contents
            self.params.solve = bool(self.params.composition)
        if self.params.solve:
            from ml_phasing.phasing.solution import SUFFIXES

            outs += [f"{self.prefix}_solve{s}" for s in SUFFIXES]
        refuse_existing(outs, self.params.output.overwrite)
        self.device = resolve_device(self.params.device)
        sym = symmetry_from_params(self.params.symmetry)
        self.f_obs, self.input_info = observed_amplitudes(self, path, self.params.input.labels, sym)
        self.f_obs = reflection_io.cut_at(self.f_obs, self.params.d_min, self.input_info)
        self.model_path = model_file.resolve(
            self.params.model, "extend_resolution", d_min_data=self.f_obs.d_min(), d_min_target=self.params.d_min_target
        )
        self.bundle = model_file.load_bundle(self.model_path, task="extend_resolution", device=self.device)
        self.bundle.check_supported(self.f_obs, d_min_target=self.params.d_min_target)
        cs = self.f_obs.crystal_symmetry()
        if self.params.composition:
            from ml_phasing.phasing import composition

            self.composition = composition.parse_composition(self.params.composition)
            composition.check_fits(cs, self.composition)
        else:
            self.composition = shelx_io.estimate_composition(cs)

    def run(self):
        with logged(self, f"{self.prefix}.log"):
            self._run()

    def _run(self):
        log_header(self, self.params.random_seed, self.device)
        out = self.logger
        i = self.input_info
        print(
            f"Read {i['n_reflections']} reflections from {i['file']} ({i['labels']}), {i['space_group']}, "
            f"d_min {i['d_min']:.2f} A",
            file=out,
        )
        print_notes(i["notes"], out)
        r = resolution_extension.extend(self.bundle, self.f_obs, self.params.d_min_target, self.device)
        print(
            f"Extended to {r['d_min_target']:.2f} A: {r['n_measured']} measured, {r['n_predicted']} predicted "
            f"(sigma = {r['relative_sigma']:.2f} x F for predicted)",
            file=out,
        )
        files = []
        ext = r["extended"]
        mtz = f"{self.prefix}.mtz"
        map_io.write_mtz(
            mtz,
            [(r["measured_f"], "F"), (ext, "F_EXT"), (r["predicted"], "PREDICTED", "I")],
            title="ml_phasing.extend_resolution",
        )
        files.append(mtz)
        shelx_io.write_hkl(f"{self.prefix}.hkl", ext)
        shelx_io.write_ins(
            f"{self.prefix}.ins",
            ext.crystal_symmetry(),
            self.composition,
            title=f"{self.prefix} extended by ml_phasing",
            wavelength=self.params.wavelength,
        )
        files += [f"{self.prefix}.hkl", f"{self.prefix}.ins"]
        self.result = {
            "input": i,
            "model": os.path.abspath(self.model_path),
            "d_min_target": r["d_min_target"],
            "n_measured": r["n_measured"],
            "n_predicted": r["n_predicted"],
            "composition_asu": self.composition,
            "files": files,
        }
        if self.params.solve:
            self.result["solution"] = self._solve(r)
            files += self.result["solution"]["files"]
        elif self.solve_was_auto:
            print(
                "\nNo structure refined (solve=Auto): give composition= (the asymmetric unit's contents, "
                'e.g. composition="C10 N2 O2") to run the phasing engine on these data.',
                file=self.logger,
            )
        for f in files:
            print(f"  wrote {f}", file=out)
        write_text(f"{self.prefix}.json", json.dumps(self.result, indent=2, default=str) + "\n")

    def _solve(self, r) -> dict:
        """The phasing engine on the measured amplitudes, started from charge flipping on the extended
        data with the free lunch to the target resolution (solve_data=extended), or ab initio."""
        from ml_phasing.phasing import solution, starts

        p = self.params
        out = self.logger
        f = r["measured_f"]
        rng = np.random.default_rng([p.random_seed, 7])
        if p.solve_data == "extended":
            print("\nPhasing engine from charge flipping on the extended data:", file=out)

            def chain():
                yield from starts.charge_flipping_starts(
                    f, 3, p.random_seed, amplitudes=r["extended"], kind="extend_resolution"
                )
                yield from starts.ab_initio_starts(f, self.composition, p.engine.max_starts, p.random_seed, rng)

            settings = solution.settings_from_params(p.engine, d_min_extend=float(r["d_min_target"]))
        else:
            print("\nPhasing engine on the measured data alone (baseline):", file=out)

            def chain():
                yield from starts.ab_initio_starts(f, self.composition, p.engine.max_starts, p.random_seed, rng)

            settings = solution.settings_from_params(p.engine)
        result = solution.run(
            f,
            self.composition,
            chain(),
            settings,
            seed=p.random_seed,
            nproc=p.nproc,
            max_starts=p.engine.max_starts,
            log=out,
        )
        files = solution.write(f"{self.prefix}_solve", f, result, self.program_name)
        return {**solution.summary(result, settings), "solve_data": p.solve_data, "files": files}
