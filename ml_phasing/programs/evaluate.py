"""ml_phasing.evaluate: cphasematch-style judgement of predictions against the truth."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
from libtbx.program_template import ProgramTemplate
from libtbx.utils import Sorry

from ml_phasing import plots
from ml_phasing.metrics import evaluation
from ml_phasing.io.atomic_io import write_text
from ml_phasing.phil.evaluate import phil_str
from ml_phasing.program_support import ResultsMixin, jsonable, log_header, logged, progress
from ml_phasing.citations import scope as citation_scope
from ml_phasing.version import __version__


class Program(ResultsMixin, ProgramTemplate):
    program_name = "ml_phasing.evaluate"
    version = __version__
    citations = citation_scope("pan2023")
    known_article_ids = ["cctbx"]
    description = """
Judge predicted phases, maps or amplitudes against the truth, the way
crystallographers do (cphasematch): mean and FOM-weighted phase errors, overall
and per resolution shell, after the best origin shift the space group allows
and the better hand; the fraction of reflections within 60 degrees; map
correlation (plain and aligned), 3D SSIM and Patterson consistency; the
amplitude R factor (optionally on predicted reflections only); and, with a
model as reference, atom recovery by Euclidean model matching and the
interatomic-vector check of the Scripps work.

Outputs (named from output.prefix, default "evaluate"): a table on the
terminal and in <prefix>.log, <prefix>.json (everything), <prefix>_shells.csv
(one row per prediction and shell) and PNG figures: <prefix>_phase_error.png,
<prefix>_fraction_60.png, <prefix>_r_factor.png, <prefix>_maps.png,
<prefix>_voxels.png and, for several predictions, <prefix>_distribution.png.
Several predictions give medians, as the papers report them.

Examples:

  ml_phasing.evaluate reference.file=true.mtz prediction.file=pred.mtz
  ml_phasing.evaluate reference.file=true.mtz reference.labels=FC,PHIC \\
      prediction.file=pred.mtz prediction.labels=FWT,PHWT
  ml_phasing.evaluate reference.file=model.cif prediction.file=pred_density.ccp4
  ml_phasing.evaluate reference.file=true.mtz prediction.file=pred.mtz \\
      prediction.phase_label=PHIB prediction.fom_label=FOM
  ml_phasing.evaluate reference.file=true_density.ccp4 prediction.file=predictions/ \\
      output.prefix=all_maps
"""
    datatypes = ["phil"]
    master_phil_str = phil_str

    def validate(self):
        if self.params.reference.file is None:
            raise Sorry("reference.file is required.")
        if not self.params.prediction.file:
            raise Sorry("prediction.file is required (one or more files or directories).")
        for path in [self.params.reference.file] + list(self.params.prediction.file):
            if not os.path.exists(path):
                raise Sorry(f"File not found: {path}")
        self.paths = evaluation.expand_prediction_paths(self.params.prediction.file)
        self.prefix = self.params.output.prefix or "evaluate"
        outputs = [f"{self.prefix}.json", f"{self.prefix}_shells.csv"]
        if not self.params.output.overwrite:
            existing = [p for p in outputs if os.path.exists(p)]
            if existing:
                raise Sorry(f"{', '.join(existing)} exist; add --overwrite or choose output.prefix.")

    def run(self):
        with logged(self, f"{self.prefix}.log"):
            self._run()

    def _run(self):
        log_header(self, None, "cpu")
        reference = evaluation.load_reference(self.params)
        print(
            f"Reference: {reference.path} ({reference.kind}, {reference.symmetry.space_group_info()}, "
            f"cell {evaluation.cell_string(reference.symmetry)})",
            file=self.logger,
        )
        results = []
        for path in progress(self.paths, desc="evaluate", unit="file"):
            prediction = evaluation.load_prediction(path, self.params)
            results.append(evaluation.evaluate(reference, prediction, self.params))
        extras = [r.pop("_") for r in results]
        for r in results:
            self._show(r)
        summary = self._summary(results)
        if len(results) > 1:
            self._show_summary(summary)
        self.result = {
            "program": self.program_name,
            "version": self.version,
            "summary": summary,
            "predictions": results,
            "files": [],
        }
        self._write(results, extras)
        print("Files written:", file=self.logger)
        for f in self.result["files"]:
            print(f"  {f}", file=self.logger)

    # -- reporting ---------------------------------------------------------------
    def _show(self, r):
        out = self.logger
        print(f"\n{r['prediction']} ({r['prediction_kind']})", file=out)
        if "map_cc" in r:
            print(
                f"  map CC {r['map_cc']:.3f}, after origin/hand alignment {r['map_cc_aligned']:.3f}"
                + (f", SSIM {r['ssim']:.3f}" if "ssim" in r else "")
                + (f", Patterson consistency {r['patterson_consistency']:.3f}" if "patterson_consistency" in r else ""),
                file=out,
            )
        ph = r.get("phases")
        if ph:
            o = ph["overall"]
            if "origin_shift" in ph:
                print(
                    f"  origin shift ({', '.join(f'{x:.4f}' for x in ph['origin_shift'])}), "
                    f"hand {'inverted' if ph['inverted_hand'] else 'as given'}",
                    file=out,
                )
            print(
                f"  {'d_max':>6} {'d_min':>6} {'n':>6} {'<dphi>':>7} {'w<dphi>':>8} {'F<dphi>':>8} {'<60deg':>7}",
                file=out,
            )
            for s in ph["shells"] + [dict(o, d_max=r.get("d_max", 0), d_min=r.get("d_min", 0))]:
                if not s["n"]:
                    continue
                fom_w = s["fom_weighted_phase_error"]
                print(
                    f"  {s['d_max']:6.2f} {s['d_min']:6.2f} {s['n']:6d} {s['mean_phase_error']:7.1f} "
                    f"{(fom_w if fom_w is not None else float('nan')):8.1f} "
                    f"{s['f_weighted_phase_error']:8.1f} {s['fraction_below_60']:7.2f}",
                    file=out,
                )
        amp = r.get("amplitudes")
        if amp:
            print(
                f"  amplitude R {amp['r_factor']:.3f} on {amp['n']} reflections"
                + (" (predicted only)" if amp["restricted_to_predicted"] else ""),
                file=out,
            )
        if "atoms" in r:
            a = r["atoms"]
            print(
                f"  atoms matched within tolerance: {a['n_matched']}/{a['n_true']} "
                f"({a['fraction_matched']:.0%})" + (f", rms {a['rms']:.2f} A" if a["rms"] else ""),
                file=out,
            )
            iv = r["interatomic_vectors"]
            print(f"  interatomic vectors: precision {iv['precision']:.2f}, recall {iv['recall']:.2f}", file=out)

    @staticmethod
    def _summary(results):
        def pick(f):
            vals = []
            for r in results:
                try:
                    v = f(r)
                except (KeyError, TypeError):
                    continue
                if v is not None and np.isfinite(v):
                    vals.append(float(v))
            return (
                {"median": float(np.median(vals)), "mean": float(np.mean(vals)), "n": len(vals), "values": vals}
                if vals
                else None
            )

        return {
            "n_predictions": len(results),
            "map_cc_aligned": pick(lambda r: r["map_cc_aligned"]),
            "mean_phase_error": pick(lambda r: r["phases"]["overall"]["mean_phase_error"]),
            "f_weighted_phase_error": pick(lambda r: r["phases"]["overall"]["f_weighted_phase_error"]),
            "fraction_below_60": pick(lambda r: r["phases"]["overall"]["fraction_below_60"]),
            "inverted_hand": pick(lambda r: float(r["phases"]["inverted_hand"])),
            "r_factor": pick(lambda r: r["amplitudes"]["r_factor"]),
            "fraction_atoms_matched": pick(lambda r: r["atoms"]["fraction_matched"]),
        }

    def _show_summary(self, summary):
        print(f"\nSummary over {summary['n_predictions']} predictions (median / mean):", file=self.logger)
        for key, value in summary.items():
            if isinstance(value, dict):
                print(f"  {key:24s} {value['median']:.3f} / {value['mean']:.3f} (n={value['n']})", file=self.logger)

    def _write(self, results, extras):
        files = self.result["files"]
        json_path = f"{self.prefix}.json"
        write_text(json_path, json.dumps(self.result, indent=2, default=jsonable) + "\n")
        files.append(json_path)
        csv_path = f"{self.prefix}_shells.csv"
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(
            [
                "prediction",
                "quantity",
                "d_max",
                "d_min",
                "n",
                "mean_phase_error",
                "fom_weighted_phase_error",
                "f_weighted_phase_error",
                "fraction_below_60",
                "r_factor",
            ]
        )
        for r in results:
            for s in (r.get("phases") or {}).get("shells", []):
                w.writerow(
                    [
                        r["prediction"],
                        "phases",
                        s["d_max"],
                        s["d_min"],
                        s["n"],
                        s["mean_phase_error"],
                        s["fom_weighted_phase_error"],
                        s["f_weighted_phase_error"],
                        s["fraction_below_60"],
                        "",
                    ]
                )
            for s in (r.get("amplitudes") or {}).get("shells", []):
                w.writerow(
                    [r["prediction"], "amplitudes", s["d_max"], s["d_min"], s["n"], "", "", "", "", s["r_factor"]]
                )
        write_text(csv_path, buf.getvalue())
        files.append(csv_path)
        if not self.params.output.plots:
            return
        p = self.prefix
        if plots.shell_curves(results, "mean_phase_error", "mean phase error (deg)", f"{p}_phase_error.png"):
            files.append(f"{p}_phase_error.png")
        if plots.shell_curves(results, "fraction_below_60", "fraction < 60 deg", f"{p}_fraction_60.png"):
            files.append(f"{p}_fraction_60.png")
        if plots.shell_curves(results, "r_factor", "amplitude R", f"{p}_r_factor.png", source="amplitudes"):
            files.append(f"{p}_r_factor.png")
        first = extras[0]
        if "ref_map" in first:
            plots.map_sections(first["ref_map"], first["pred_map"], f"{p}_maps.png")
            plots.voxels_with_atoms(first["pred_map"], first.get("sites_true"), f"{p}_voxels.png")
            files += [f"{p}_maps.png", f"{p}_voxels.png"]
        if len(results) > 1:
            values = self.result["summary"]["map_cc_aligned"] or self.result["summary"]["r_factor"]
            if values:
                label = "aligned map CC" if self.result["summary"]["map_cc_aligned"] else "amplitude R"
                plots.histogram(values["values"], label, f"{p}_distribution.png")
                files.append(f"{p}_distribution.png")
