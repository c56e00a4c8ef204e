"""ml_phasing.patterson_to_density: measured amplitudes -> density map and phases."""

from __future__ import annotations

import json
import os
import time

import numpy as np
from cctbx import miller
from cctbx.array_family import flex
from libtbx import Auto
from libtbx.program_template import ProgramTemplate
from libtbx.utils import Sorry

from ml_phasing.prediction import density_prediction
from ml_phasing.io import map_io
from ml_phasing.io.atomic_io import write_text
from ml_phasing.phil.patterson_to_density import phil_str
from ml_phasing.program_support import (
    input_file,
    log_header,
    logged,
    observed_amplitudes,
    print_input,
    refuse_existing,
    resolve_device,
    ResultsMixin,
    symmetry_from_params,
)
from ml_phasing.citations import scope as citation_scope
from ml_phasing.version import __version__


class Program(ResultsMixin, ProgramTemplate):
    program_name = "ml_phasing.patterson_to_density"
    version = __version__
    citations = citation_scope("pan2023", "charge_flipping", "shelxd")
    known_article_ids = ["cctbx"]
    description = """
Predict the electron density, and so the phases, from measured amplitudes with a
Patterson-to-density network (Pan et al., IUCrJ 2023).

The amplitudes (or intensities, converted by French-Wilson) are expanded to P1,
their Patterson map is computed on the model's grid exactly as in training, the
network predicts the density, the origin most consistent with the space group is
found and the density's structure factors are symmetrised, and figures of merit
come from Sim weighting. Charge-flipping cycles (refinement.cycles) can start from
these phases: by default none after the shipped dialanine model (its recycling passes
impose the observed amplitudes already, and cycles made it worse) and 20 after the
dipeptide model or a model of your own.

Then the phasing engine (as ml_phasing.solve) refines atoms against the observed
amplitudes from the network's starts (solve=Auto): by default wherever it knows the
cell's contents, from composition= or, for the shipped dialanine model on P1 data,
the one molecule it was trained on (C6 N2 O2). On real dialanine fragments this takes
the median phase error from 16 to 7 degrees and solves 95% (docs/solve.md).
solve=False refinement.cycles=0 keeps the network's phases alone.

A model of the task intensity_to_density (Scripps: |F|^2 on the integer hkl cube
in, voxel atoms of the unit cell out, from ml_phasing.train) works too. Its input is
built from the data as in training. The absolute scale and F000 come from
composition= (estimated when it is not given). Its voxel map gives the phases (a
Cartesian voxel cube is first put back on the unit cell's grid) of the reflections in
its hkl cube; with composition= (solve=Auto) the engine starts from them, the rest of
the data's phases random (docs/train.md).

Without model= the model shipped with the package is used (dialanine in 10 A P1
cubic cells at 1.5 A); model=dipeptide_12A picks the shipped dipeptide model
(12 A cells). docs/models.md says what each reaches.

Outputs (output.prefix, default the input file's name + "_p2d"):
  <prefix>.mtz          input F,SIGF; FWT,PHWT (m*Fobs, predicted phases, Coot's
                        default); PHIB,FOM; FC,PHIC (the predicted density's own
                        structure factors, scaled to Fobs)
  <prefix>_density.ccp4 the predicted density on the unit cell
  <prefix>.log, <prefix>.json (what was read, the model, figures of merit, files)
  where the engine runs (solve=Auto or True), its refined structure from these
  starts, as ml_phasing.solve writes it: <prefix>_solve.res/.cif/.pdb/.mtz/_map.ccp4

Examples:

  ml_phasing.patterson_to_density data.mtz
  ml_phasing.patterson_to_density data.mtz input.labels=F,SIGF output.prefix=run1
  ml_phasing.patterson_to_density data.hkl symmetry.unit_cell=10,10,10,90,90,90 \\
      symmetry.space_group=P1
  ml_phasing.patterson_to_density data.mtz model=my_model.pt refinement.cycles=50
  ml_phasing.patterson_to_density dipeptide.mtz model=dipeptide_12A
  ml_phasing.patterson_to_density data.mtz solve=True composition="C6 N2 O2"
  ml_phasing.patterson_to_density data.mtz solve=False refinement.cycles=0
      (the network's phases alone)
  ml_phasing.patterson_to_density data.mtz model=my_model.pt composition="C8 N1 O1"
      (an intensity_to_density model: composition= sets the absolute scale and F000)
"""
    datatypes = ["miller_array", "phil"]
    master_phil_str = phil_str

    def validate(self):
        from ml_phasing.models import model_file  # torch: only when a network runs

        path = input_file(self)
        self.input_path = path
        model = model_file.resolve(self.params.model, "patterson_to_density")
        if model in model_file.shipped_models().values() and not os.path.isfile(model):
            raise Sorry(f"The shipped model {model} is missing from this installation; give model=.")
        self.model_path = model
        stem = os.path.splitext(os.path.basename(path))[0]
        self.prefix = self.params.output.prefix or f"{stem}_p2d"
        self.outputs = [f"{self.prefix}.mtz", f"{self.prefix}.json"] + (
            [f"{self.prefix}_density.ccp4"] if self.params.output.write_map else []
        )
        if self.params.solve:  # True; Auto adds these below once the model is read
            self.outputs += self._solve_outputs()
        refuse_existing(self.outputs, self.params.output.overwrite)
        self.device = resolve_device(self.params.device)
        # Read and check everything before any output is written.
        sym = symmetry_from_params(self.params.symmetry)
        self.f_obs, self.input_info = observed_amplitudes(self, path, self.params.input.labels, sym)
        task = model_file.read_model_file(self.model_path).get("task")
        if task not in ("patterson_to_density", "intensity_to_density"):
            raise Sorry(
                f"{self.model_path} is a model for the task {task!r}, not 'patterson_to_density' "
                "or 'intensity_to_density'."
            )
        self.bundle = model_file.load_bundle(self.model_path, task=task, device=self.device)
        self.intensity_model = task == "intensity_to_density"
        # one molecule per P1 cell, as in training; in other space groups the user says what the cell holds
        in_p1 = self.f_obs.space_group().order_z() == 1
        self.model_composition = (
            density_prediction.model_composition(self.bundle) if in_p1 and not self.intensity_model else None
        )
        self.bundle.check_supported(self.f_obs)
        self.solve_was_auto = self.params.solve is Auto
        if self.params.solve is Auto:  # the engine runs where it knows the cell's contents
            self.params.solve = bool(self.params.composition or self.model_composition)
            if self.params.solve:
                solve_outputs = self._solve_outputs()
                refuse_existing(solve_outputs, self.params.output.overwrite)
                self.outputs += solve_outputs
        if self.intensity_model:
            self._validate_intensity_model()
        if self.params.refinement.cycles is Auto:
            self.params.refinement.cycles = density_prediction.default_refinement_cycles(self.bundle)
        if self.params.recycling.passes is Auto:
            self.params.recycling.passes = density_prediction.recycling_passes(self.bundle)
        if self.params.ensemble.every_pass is Auto:
            self.params.ensemble.every_pass = density_prediction.every_pass_default(self.bundle)
        if self.params.solve:
            self._read_composition()

    def _solve_outputs(self) -> list:
        from ml_phasing.phasing.solution import SUFFIXES

        return [f"{self.prefix}_solve{s}" for s in SUFFIXES]

    def _read_composition(self):
        """The unit-cell contents from composition=, else the one molecule a model was trained on
        (the dialanine model), else estimated from the cell; checked against the cell."""
        from ml_phasing.phasing import composition

        self.composition = composition.for_cell(
            self.f_obs.crystal_symmetry(), self.params.composition, self.model_composition
        )

    def _validate_intensity_model(self):
        """What an intensity_to_density model needs besides the checks of its Task: the
        unit-cell contents (absolute scale and F000 of its |F|^2 grid)."""
        self._read_composition()

    def run(self):
        with logged(self, f"{self.prefix}.log"):
            self._run()

    def _run(self):
        import torch

        torch.manual_seed(self.params.random_seed)
        log_header(self, self.params.random_seed, self.device)
        out = self.logger
        print_input(self.input_info, out)
        m = self.bundle.info
        t0 = time.time()
        if self.intensity_model:
            r = self._predict_intensity_model(out)
        else:
            print(
                f"Model {self.model_path}: {m['architecture']}, trained on {m['task_config'].get('source')} "
                f"cells {m['task_config'].get('unit_cell')} at {m['task_config'].get('map_d_min')} A",
                file=out,
            )
            r = density_prediction.predict(
                self.bundle,
                self.f_obs,
                self.device,
                self.params.refinement.cycles,
                self.params.ensemble.rotations,
                passes=self.params.recycling.passes,
                every_pass=self.params.ensemble.every_pass,
            )
        seconds = time.time() - t0
        n_rot = r["rotations"]
        n_passes = r.get("passes", 1)
        print(
            f"Prediction on grid {r['grid']} to {r['d_min']:.2f} A in {seconds:.2f} s"
            + (f", {n_passes} recycling passes" if n_passes > 1 else "")
            + (f", averaged over {n_rot} grid rotations" if n_rot > 1 else "")
            + (" after every pass" if r.get("every_pass") else ""),
            file=out,
        )
        n_used, n_in = r["f_obs"].size(), self.f_obs.size()
        if n_used < n_in:
            print(
                f"  Note: the model works to {r['d_min']:.2f} A: {n_used} of the {n_in} reflections are used "
                f"(the data reach {self.f_obs.d_min():.2f} A)",
                file=out,
            )
        if self.f_obs.space_group().order_z() > 1:
            print(
                f"Origin consistent with {self.f_obs.space_group_info()}: shift "
                f"({', '.join(f'{x:.3f}' for x in r['origin_shift'])}), symmetry CC {r['symmetry_cc']:.3f}",
                file=out,
            )
        print(
            f"R(|Fobs|, |F of predicted density|) = {r['r_factor_network']:.3f}; mean FOM "
            f"{np.mean(r['fom_network']):.3f} (network)"
            + (
                f", {r['mean_fom']:.3f} after {self.params.refinement.cycles} charge-flipping cycles"
                if self.params.refinement.cycles
                else ""
            )
            + (
                " (calibrated: mean FOM = mean cos(dphi) on held-out data)"
                if r.get("fom_calibrated")
                else " (Sim FOMs, not calibrated for this model: they overstate cos(dphi))"
            ),
            file=out,
        )
        files = self._write(r)
        for f in files:
            print(f"  wrote {f}", file=out)
        self.result = {
            "input": self.input_info,
            "model": {
                "file": os.path.abspath(self.model_path),
                "task": m["task"],
                "architecture": m["architecture"],
                "task_config": {k: v for k, v in m["task_config"].items() if k != "dataset_parameters"},
                "training_metrics": m.get("metrics"),
            },
            "grid": list(r["grid"]),
            "d_min": r["d_min"],
            "origin_shift": list(r["origin_shift"]),
            "symmetry_cc": r["symmetry_cc"],
            "r_factor_network": r["r_factor_network"],
            "mean_fom_network": float(np.mean(r["fom_network"])),
            "mean_fom": r["mean_fom"],
            "refinement_cycles": self.params.refinement.cycles,
            "ensemble_rotations": n_rot,
            "recycling_passes": n_passes,
            "rotations_averaged_every_pass": bool(r.get("every_pass")),
            "seconds": round(seconds, 3),
            "device": self.device,
            "files": files,
        }
        if self.intensity_model:
            self.result["intensity_input"] = {
                "composition": self.composition,
                "f000": r["f000"],
                "form_factor": r["form_factor"],
                "absolute_scale": r["scale_note"],
                "cube_d_min": r["cube_d_min"],
            }
        if self.params.solve:
            self.result["solution"] = self._solve(r)
            files += self.result["solution"]["files"]
        elif self.solve_was_auto:
            print(
                "\nNo structure refined (solve=Auto): the cell's contents are not known for this model "
                'and these data; give composition= (e.g. composition="C10 N3 O4") to run the phasing engine.',
                file=self.logger,
            )
        write_text(f"{self.prefix}.json", json.dumps(self.result, indent=2) + "\n")
        files.append(f"{self.prefix}.json")

    def _predict_intensity_model(self, out) -> dict:
        from ml_phasing.prediction import intensity_prediction

        task = self.bundle.task
        print(f"Model {self.model_path}: {self.bundle.info['architecture']}, intensity_to_density", file=out)
        print(f"  {task.supports()}", file=out)
        if self.params.ensemble.rotations > 1:
            print("  Note: ensemble.rotations applies to Patterson models only; one prediction is made.", file=out)
        r = intensity_prediction.predict(
            self.bundle, self.f_obs, self.composition, self.device, self.params.refinement.cycles
        )
        scale = intensity_prediction.scale_summary(
            self.composition, bool(self.params.composition), r["f000"], r["scale_note"]
        )
        print(
            f"  |F|^2 on the hkl cube -{task.h_max}..{task.h_max} (data to {r['cube_d_min']:.2f} A in this cell), "
            + scale,
            file=out,
        )
        return r

    def _solve(self, prediction: dict) -> dict:
        """The engine from this prediction's starts (each grid rotation and hand of a Patterson
        model; the one prediction and its other hand of an intensity model), random starts in turn."""
        from ml_phasing.phasing import solution, starts

        p = self.params
        out = self.logger
        print("\nPhasing engine from the network's predictions:", file=out)
        source = (
            "composition="
            if p.composition
            else "the molecule the model was trained on"
            if self.model_composition
            else "estimated from the cell: give composition="
        )
        contents = " ".join(f"{e}{n:g}" for e, n in self.composition.items())
        print(f"  contents of the asymmetric unit: {contents} ({source})", file=out)
        rng = np.random.default_rng([p.random_seed, 7])

        def chain():  # network and random starts in turn (see ml_phasing.solve)
            if self.intensity_model:
                network = starts.prediction_starts(
                    prediction["phases"], self.f_obs, rng, "intensity_to_density", "network"
                )
            else:
                network = starts.network_starts(self.bundle, self.f_obs, self.device, rotations=24)
            yield from starts.interleaved(network, starts.random_starts(self.f_obs, p.engine.max_starts, rng))

        settings = solution.settings_from_params(p.engine)
        result = solution.run(
            self.f_obs,
            self.composition,
            chain(),
            settings,
            seed=p.random_seed,
            nproc=p.nproc,
            max_starts=p.engine.max_starts,
            log=out,
        )
        files = solution.write(f"{self.prefix}_solve", self.f_obs, result, self.program_name)
        for name in files:
            print(f"  wrote {name}", file=out)
        return {**solution.summary(result, settings), "composition": self.composition, "files": files}

    def _write(self, r) -> list:
        f_obs = r["f_obs"]
        phases = r["phases"].common_set(f_obs)
        f_obs = f_obs.common_set(phases)
        fom = r["fom"]
        phi = flex.arg(phases.data())
        fwt = miller.array(miller_set=f_obs, data=flex.polar(f_obs.data() * flex.double(fom), phi))
        phib = miller.array(miller_set=f_obs, data=phi * float(180.0 / np.pi))
        fom_arr = miller.array(miller_set=f_obs, data=flex.double(fom))
        fc = r["f_pred"].common_set(f_obs)
        columns = [(f_obs, "F"), (fwt, "FWT"), (phib, "PHIB", "P"), (fom_arr, "FOM", "W"), (fc, "FC")]
        path = f"{self.prefix}.mtz"
        map_io.write_mtz(
            path, columns, rename={"PHIFWT": "PHWT", "PHIFC": "PHIC"}, title="ml_phasing.patterson_to_density"
        )
        files = [path]
        if self.params.output.write_map:
            density = density_prediction.density_on_grid(r["f_pred"], r["grid"])
            map_path = f"{self.prefix}_density.ccp4"
            map_io.write_ccp4_map(map_path, f_obs.unit_cell(), density, title="ml_phasing predicted density")
            files.append(map_path)
        return files
