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
from ml_phasing.program_support import (
    jsonable,
    log_header,
    logged,
    print_notes,
    progress,
    refuse_existing,
    ResultsMixin,
)
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

Files on the command line are the reference (first), then the predictions.
Both sides are cut to their common resolution (a "Note:" says so when they
differ). H and D atoms of a model reference are left out
(reference.remove_hydrogens=True; the log says how many).

Many references against many predictions, for pipelines over whole data sets
(one row each in <prefix>_pairs.csv and the JSON, medians in the summary):
reference.file=DIRECTORY pairs each prediction with the reference whose name
stem its own stem starts with, followed by _, -, . or nothing
(example_00012_p2d.mtz with example_00012.mtz; the longest wins; references
are the folder's reference.pattern files, default *.mtz); files left unpaired
are listed. Or pairs=LIST, a text file with "reference prediction" on each
line (# comments; paths relative to the list file's folder).

Examples:

  ml_phasing.evaluate true.mtz pred.mtz
  ml_phasing.evaluate true.mtz pred.mtz reference.labels=FC,PHIC prediction.labels=FWT,PHWT
  ml_phasing.evaluate reference.file=true.mtz prediction.file=pred.mtz
  ml_phasing.evaluate reference.file=true.mtz reference.labels=FC,PHIC \\
      prediction.file=pred.mtz prediction.labels=FWT,PHWT
  ml_phasing.evaluate reference.file=model.cif prediction.file=pred_density.ccp4
  ml_phasing.evaluate reference.file=true.mtz prediction.file=pred.mtz \\
      prediction.phase_label=PHIB prediction.fom_label=FOM
  ml_phasing.evaluate reference.file=true_density.ccp4 prediction.file=predictions/ \\
      output.prefix=all_maps
  ml_phasing.evaluate reference.file=examples/ prediction.file=predictions/ \\
      output.prefix=dataset
  ml_phasing.evaluate pairs=pairs.txt output.prefix=dataset
"""
    datatypes = ["phil"]
    master_phil_str = phil_str

    def _positional_files(self) -> list:
        """Files given on the command line without a keyword, in their order (the parser keeps
        them apart from the files PHIL keywords name)."""
        dm = self.data_manager
        return list(getattr(dm, "positional_files", None) or []) if dm is not None else []

    def validate(self):
        p = self.params
        reference, predictions = p.reference.file, list(p.prediction.file or [])
        positional = self._positional_files()
        if positional and p.pairs:
            raise Sorry(
                f"Too many inputs: pairs={p.pairs} lists the files to judge, and files are given as well "
                f"({', '.join(positional)}); give either the list file or the files."
            )
        if positional and reference is not None and os.path.abspath(positional[0]) == os.path.abspath(reference):
            # the same reference both ways: the other files are the predictions
            positional, predictions = [], positional[1:] + predictions
        if positional:
            if reference is not None:
                raise Sorry(
                    f"Two references: reference.file={reference} and {positional[0]}, the first file on the "
                    "command line (files there are read as the reference, then the predictions). Give the "
                    "reference once."
                )
            reference, predictions = positional[0], positional[1:] + predictions
        self.unpaired = {"references": [], "predictions": []}
        if p.pairs:
            if reference is not None or predictions:
                raise Sorry(
                    f"pairs={p.pairs} takes the place of reference.file and prediction.file: give one or the other."
                )
            if not os.path.isfile(p.pairs):
                raise Sorry(f"File not found: {p.pairs}")
            self.pairs = evaluation.read_pairs_file(p.pairs)
        else:
            if reference is None:
                raise Sorry(
                    "No reference: give the truth first (ml_phasing.evaluate truth.mtz prediction.mtz), or "
                    "reference.file= and prediction.file=, or pairs= with a list file."
                )
            if not predictions:
                raise Sorry(
                    f"No prediction to judge against {reference}: give a reference and at least one prediction "
                    "(ml_phasing.evaluate truth.mtz prediction.mtz), or prediction.file= (files or directories)."
                )
            for path in [reference] + predictions:
                if not os.path.exists(path):
                    raise Sorry(f"File not found: {path}")
            paths = evaluation.expand_prediction_paths(predictions)
            if os.path.isdir(reference):
                refs = evaluation.reference_files(reference, p.reference.pattern or "*")
                self.pairs, unpaired_refs, unpaired_preds = evaluation.pair_by_name(refs, paths)
                self.unpaired = {"references": unpaired_refs, "predictions": unpaired_preds}
                if not self.pairs:
                    raise Sorry(
                        f"No prediction pairs with a reference of {reference} by name ({len(refs)} references, "
                        f"{len(unpaired_preds)} predictions): a prediction's file name must start with a "
                        "reference's name (example_00012_p2d.mtz with example_00012.mtz)."
                    )
            else:
                self.pairs = [(reference, path) for path in paths]
        self.paths = [pred for _, pred in self.pairs]
        self.prefix = self.params.output.prefix or "evaluate"
        outputs = [f"{self.prefix}.json", f"{self.prefix}_shells.csv", f"{self.prefix}_pairs.csv"]
        refuse_existing(outputs, self.params.output.overwrite)

    def run(self):
        with logged(self, f"{self.prefix}.log"):
            self._run()

    def _run(self):
        log_header(self, None, "cpu")
        self._show_unpaired()
        results, extras = [], []
        reference = None
        for ref_path, path in progress(self.pairs, desc="evaluate", unit="pair"):
            if reference is None or reference.path != ref_path:
                reference = evaluation.load_reference(self.params, ref_path)
                self._show_reference(reference)
            prediction = evaluation.load_prediction(path, self.params)
            pair = evaluation.evaluate(reference, prediction, self.params)
            r, extra = pair.as_dict(), pair.maps
            if not extras:
                extras.append(extra)  # the first pair's maps, for the figures; the others are not kept
            if reference.n_hydrogens_removed:
                r["n_hydrogens_removed"] = reference.n_hydrogens_removed
            self._show(r, several_references=len({ref for ref, _ in self.pairs}) > 1)
            results.append(r)
        summary = self._summary(results)
        summary["n_unpaired_references"] = len(self.unpaired["references"])
        summary["n_unpaired_predictions"] = len(self.unpaired["predictions"])
        if len(results) > 1:
            self._show_pairs(results)
            self._show_summary(summary)
        self.result = {
            "program": self.program_name,
            "version": self.version,
            "summary": summary,
            "predictions": results,
            "unpaired": self.unpaired,
            "files": [],
        }
        self._write(results, extras)
        print("Files written:", file=self.logger)
        for f in self.result["files"]:
            print(f"  {f}", file=self.logger)

    # -- reporting ---------------------------------------------------------------
    def _show_reference(self, reference):
        print(
            f"\nReference: {reference.path} ({reference.kind}, {reference.symmetry.space_group_info()}, "
            f"cell {evaluation.cell_string(reference.symmetry)})",
            file=self.logger,
        )
        if reference.kind == "model":
            n = reference.structure.scatterers().size()
            if self.params.reference.remove_hydrogens:
                print(
                    f"  {reference.n_hydrogens_removed} H/D atoms removed from the model "
                    f"(reference.remove_hydrogens=True); {n} atoms kept",
                    file=self.logger,
                )
            else:
                n_h = int(reference.structure.hd_selection().count(True))
                print(f"  {n} atoms, {n_h} of them H/D (reference.remove_hydrogens=False)", file=self.logger)

    def _show_unpaired(self):
        refs, preds = self.unpaired["references"], self.unpaired["predictions"]
        if preds:
            print(f"Unpaired: {len(preds)} prediction(s) with no reference of the same name:", file=self.logger)
            for f in preds:
                print(f"  {f}", file=self.logger)
        if refs:
            print(f"Unpaired: {len(refs)} reference(s) with no prediction:", file=self.logger)
            for f in refs:
                print(f"  {f}", file=self.logger)

    def _show_pairs(self, results):
        out = self.logger
        print(f"\n{len(results)} pairs (reference, prediction):", file=out)
        print(f"  {'<dphi>':>7} {'<60deg':>7} {'CC al.':>7} {'R':>6}  reference  prediction", file=out)
        for r in results:
            o = (r.get("phases") or {}).get("overall") or {}

            def fmt(v, width, digits):
                return f"{v:{width}.{digits}f}" if isinstance(v, (int, float)) else f"{'-':>{width}}"

            print(
                f"  {fmt(o.get('mean_phase_error'), 7, 1)} {fmt(o.get('fraction_below_60'), 7, 2)} "
                f"{fmt(r.get('map_cc_aligned'), 7, 3)} {fmt((r.get('amplitudes') or {}).get('r_factor'), 6, 3)}  "
                f"{r['reference']}  {r['prediction']}",
                file=out,
            )

    def _show(self, r, several_references=False):
        out = self.logger
        against = f" against {r['reference']}" if several_references else ""
        print(f"\n{r['prediction']} ({r['prediction_kind']}){against}", file=out)
        print_notes(r.get("notes", []), out)
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
            iv = r.get("interatomic_vectors")
            if iv:
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
            "n_references": len({r["reference"] for r in results}),
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

    PAIR_COLUMNS = (
        "reference",
        "prediction",
        "prediction_kind",
        "n_common",
        "d_max",
        "d_min",
        "mean_phase_error",
        "fom_weighted_phase_error",
        "f_weighted_phase_error",
        "fraction_below_60",
        "inverted_hand",
        "map_cc",
        "map_cc_aligned",
        "ssim",
        "r_factor",
        "fraction_atoms_matched",
        "n_hydrogens_removed",
    )

    def _write_pairs_csv(self, results) -> str:
        """One row per (reference, prediction) pair, for pipelines (the shells are in _shells.csv)."""
        path = f"{self.prefix}_pairs.csv"
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.PAIR_COLUMNS)
        for r in results:
            ph = r.get("phases") or {}
            o = ph.get("overall") or {}
            row = dict(r)
            row.update({k: o.get(k) for k in o})
            row["inverted_hand"] = ph.get("inverted_hand")
            row["r_factor"] = (r.get("amplitudes") or {}).get("r_factor")
            row["fraction_atoms_matched"] = (r.get("atoms") or {}).get("fraction_matched")
            w.writerow(["" if row.get(k) is None else row.get(k) for k in self.PAIR_COLUMNS])
        write_text(path, buf.getvalue())
        return path

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
        files.append(self._write_pairs_csv(results))
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
