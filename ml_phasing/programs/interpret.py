"""ml_phasing.interpret: Grad-CAM and attention maps of what drives a network's prediction."""

from __future__ import annotations

import json
import os
import time

import libtbx.phil
import numpy as np
from libtbx.program_template import ProgramTemplate
from libtbx.utils import Sorry

from ml_phasing.citations import scope as citation_scope
from ml_phasing.io.atomic_io import write_text
from ml_phasing.phil.interpret import phil_str
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
from ml_phasing.version import __version__

_METHOD_CITATIONS = """
citation {
  article_id = gradcam
  authors = Selvaraju RR, Cogswell M, Das A, Vedantam R, Parikh D, Batra D
  title = Grad-CAM: visual explanations from deep networks via gradient-based localization
  journal = Proceedings of the IEEE International Conference on Computer Vision (ICCV)
  pages = 618-626
  year = 2017
  doi_id = "10.1109/ICCV.2017.74"
}
citation {
  article_id = hirescam
  authors = Draelos RL, Carin L
  title = Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional neural networks
  journal = arXiv
  pages = 2011.08891
  year = 2020
  doi_id = "10.48550/arXiv.2011.08891"
}
citation {
  article_id = attention_rollout
  authors = Abnar S, Zuidema W
  title = Quantifying attention flow in transformers
  journal = Proceedings of the 58th Annual Meeting of the Association for Computational Linguistics
  pages = 4190-4197
  year = 2020
  doi_id = "10.18653/v1/2020.acl-main.385"
}
"""

CONV = ("patterson_unet", "unet3d", "fft_unet")


class Program(ResultsMixin, ProgramTemplate):
    program_name = "ml_phasing.interpret"
    version = __version__
    citations = libtbx.phil.parse(citation_scope("pan2023", "khaibrakhmanov2025").as_str() + _METHOD_CITATIONS)
    known_article_ids = ["cctbx"]
    description = """
Show which parts of the input drive a network's prediction (the thesis' Grad-CAM
and attention maps), as maps and columns to open beside the data in Coot.

Convolutional models (patterson_unet, unet3d, fft_unet) give Grad-CAM maps: the
activations of one layer (layer=, default the last block before the decoder),
each channel weighted by the mean gradient of a target (grad_cam.target: the
predicted atoms, all of the output, or the highest peak), summed, clipped at 0
and upsampled to the input grid. The transformer (xrd_transformer, tokens =
reflections) gives attention maps: the attention each measured reflection
receives from the predicted ones, in one layer (heads averaged) and by attention
rollout through the layers. The data are prepared by the model's task exactly
as for prediction (ml_phasing.patterson_to_density, ml_phasing.extend_resolution).

Outputs (output.prefix, default the input file's name + "_interp"):
  Patterson-to-density models:
    <prefix>_gradcam.ccp4   Grad-CAM (maximum 1) on the Patterson's grid and cell
    <prefix>_patterson.ccp4, <prefix>_density.ccp4  the network's input and output
                            on the same grid (output.write_maps)
    <prefix>_gradcam.png    central sections (origin at the centre)
  intensity-to-density (Scripps) models, convolutional (composition= sets the
  absolute scale of the |F|^2 input, as in ml_phasing.patterson_to_density):
    <prefix>.mtz            F, GRADCAM (the Grad-CAM over the |F|^2 cube input, per
                            reflection of the data inside the cube: the mean over
                            its symmetry and Friedel mates)
    <prefix>_gradcam.png    0kl, h0l, hk0 planes of the input and the Grad-CAM,
                            sections of the predicted voxels
  extension models (dense, Grad-CAM):
    <prefix>.mtz            F,SIGF (measured), F_EXT (the model's prediction for
                            every reflection to d_min_target), GRADCAM (per reflection)
    <prefix>_gradcam.png    hk0, h0l, 0kl sections and Grad-CAM against resolution
  extension models (tokens, attention):
    <prefix>.mtz            F,SIGF, F_EXT, ATTN (attention received, chosen layer)
                            and ATTN_ROLL (rollout), on the measured reflections
    <prefix>_attention.png  attention received against resolution; the
                            predicted-to-measured attention matrix
  <prefix>.log, <prefix>.json
docs/interpret.md says what the maps mean and what they do not.

Examples:

  ml_phasing.interpret data.mtz
  ml_phasing.interpret data.mtz model=dipeptide_12A grad_cam.target=highest_peak
  ml_phasing.interpret data.mtz layer=trunk.1 output.prefix=trunk1
  ml_phasing.interpret cell.mtz model=scripps_unet composition="C2 O1 Cl1"
  ml_phasing.interpret data.mtz model=extend_1.5_to_0.8A
  ml_phasing.interpret data.mtz model=my_transformer.pt layer=encoder.layers.0
"""
    datatypes = ["miller_array", "phil"]
    master_phil_str = phil_str

    def validate(self):
        from ml_phasing.models import model_file  # torch: only when a network runs
        from ml_phasing.prediction import interpretation

        path = input_file(self)
        self.input_path = path
        model = model_file.resolve(self.params.model, "patterson_to_density")
        if model in model_file.shipped_models().values() and not os.path.isfile(model):
            raise Sorry(f"The shipped model {model} is missing from this installation; give model=.")
        self.model_path = model
        self.device = resolve_device(self.params.device)
        sym = symmetry_from_params(self.params.symmetry)
        self.f_obs, self.input_info = observed_amplitudes(self, path, self.params.input.labels, sym)
        self.bundle = model_file.load_bundle(self.model_path, device=self.device)
        task, arch = self.bundle.config.task, self.bundle.config.architecture
        if task not in ("patterson_to_density", "extend_resolution", "intensity_to_density"):
            raise Sorry(
                f"{self.model_path} is a model for {task}; interpretation covers patterson_to_density, "
                "intensity_to_density and extend_resolution models."
            )
        self.layer = interpretation.check_layer(self.bundle.network, arch, self.params.layer)
        if task == "patterson_to_density":
            self.bundle.check_supported(self.f_obs)
            self.kind = "gradcam_map"
        elif task == "intensity_to_density":
            from ml_phasing.phasing import composition

            self.bundle.check_supported(self.f_obs)
            self.composition = composition.for_cell(self.f_obs.crystal_symmetry(), self.params.composition)
            self.kind = "gradcam_cube"
        else:
            self.bundle.check_supported(self.f_obs, d_min_target=self.params.d_min_target)
            self.kind = "attention" if arch not in CONV else "gradcam_reflections"
            if (self.kind == "attention") != bool(self.bundle.task.tokens):
                raise Sorry(
                    f"{self.model_path}: a {arch} network on {self.bundle.task.config.get('representation')} "
                    "data is not supported."
                )
        stem = os.path.splitext(os.path.basename(path))[0]
        self.prefix = self.params.output.prefix or f"{stem}_interp"
        p = self.prefix
        if self.kind == "gradcam_map":
            self.outputs = [f"{p}_gradcam.ccp4", f"{p}_gradcam.png"] + (
                [f"{p}_patterson.ccp4", f"{p}_density.ccp4"] if self.params.output.write_maps else []
            )
        elif self.kind in ("gradcam_reflections", "gradcam_cube"):
            self.outputs = [f"{p}.mtz", f"{p}_gradcam.png"]
        else:
            self.outputs = [f"{p}.mtz", f"{p}_attention.png"]
        self.outputs.append(f"{p}.json")
        refuse_existing(self.outputs, self.params.output.overwrite)

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
        print(f"Model {self.model_path}: {m['architecture']} ({m['task']}), layer {self.layer}", file=out)
        t0 = time.time()
        if self.kind == "gradcam_map":
            summary, files = self._gradcam_map()
        elif self.kind == "gradcam_reflections":
            summary, files = self._gradcam_reflections()
        elif self.kind == "gradcam_cube":
            summary, files = self._gradcam_cube()
        else:
            summary, files = self._attention()
        seconds = time.time() - t0
        for f in files:
            print(f"  wrote {f}", file=out)
        self.result = {
            "input": self.input_info,
            "model": {
                "file": os.path.abspath(self.model_path),
                "architecture": m["architecture"],
                "task": m["task"],
            },
            "method": "attention" if self.kind == "attention" else "grad_cam",
            "layer": self.layer,
            **summary,
            "seconds": round(seconds, 3),
            "device": self.device,
            "files": files,
        }
        write_text(f"{self.prefix}.json", json.dumps(self.result, indent=2) + "\n")
        files.append(f"{self.prefix}.json")

    # ------------------------------------------------------------------ the three kinds
    def _target(self) -> str:
        from ml_phasing.prediction import interpretation

        return interpretation.resolve_target(self.params.grad_cam.target, self.bundle.config.task)

    def _weighting(self) -> str:
        from ml_phasing.prediction import interpretation

        return interpretation.resolve_weighting(self.params.grad_cam.weighting, self.bundle.config.task)

    def _zero_note(self, r, weighting):
        if r["raw_max"] <= 0:
            hint = " try grad_cam.weighting=elementwise or another layer" if weighting == "channel" else ""
            print(f"  Note: nothing in this layer raises the target: the map is zero;{hint}.", file=self.logger)

    def _gradcam_map(self):
        from ml_phasing.io import map_io
        from ml_phasing.prediction import interpretation

        g = self.params.grad_cam
        target = self._target()
        weighting = self._weighting()
        r = interpretation.patterson_grad_cam(
            self.bundle, self.f_obs, self.layer, target, g.threshold, g.peak_radius, self.device, weighting
        )
        out = self.logger
        cam = r["cam"]
        print(
            f"Grad-CAM ({weighting} weighting) of {self.layer} (activations {r['layer_shape']}) for "
            f"target={target} on the Patterson grid {r['grid']} to {r['d_min']:.2f} A; "
            f"{int((r['alpha'] > 0).sum())} of {r['alpha'].size} channels raise the target",
            file=out,
        )
        self._zero_note(r, weighting)
        # where the network looks: the Patterson origin peak, or the interatomic vectors
        origin = _origin_fraction(cam, r["unit_cell"], 1.0)
        cc = float(np.corrcoef(cam.ravel(), r["patterson"].ravel())[0, 1]) if cam.std() > 0 else 0.0
        print(
            f"  {100 * origin:.0f}% of the Grad-CAM lies within 1 A of the Patterson origin; "
            f"CC(Grad-CAM, Patterson) = {cc:.2f}",
            file=out,
        )
        p = self.prefix
        cell = r["unit_cell"]
        files = [f"{p}_gradcam.ccp4"]
        map_io.write_ccp4_map(files[0], cell, cam, title=f"ml_phasing Grad-CAM {self.layer} {target}")
        if self.params.output.write_maps:
            map_io.write_ccp4_map(f"{p}_patterson.ccp4", cell, r["patterson"], title="ml_phasing network input")
            map_io.write_ccp4_map(f"{p}_density.ccp4", cell, r["density"], title="ml_phasing network output")
            files += [f"{p}_patterson.ccp4", f"{p}_density.ccp4"]
        interpretation.map_sections_png(
            f"{p}_gradcam.png",
            r["patterson"],
            cam,
            r["density"],
            f"Grad-CAM of {self.layer}, target {target} ({os.path.basename(self.model_path)})",
        )
        files.append(f"{p}_gradcam.png")
        summary = {
            "target": target,
            "weighting": weighting,
            "grid": list(r["grid"]),
            "unit_cell": list(cell.parameters()),
            "d_min": r["d_min"],
            "layer_shape": list(r["layer_shape"]),
            "channels_raising_target": int((r["alpha"] > 0).sum()),
            "raw_max": r["raw_max"],
            "fraction_at_origin": origin,
            "cc_with_patterson": cc,
        }
        return summary, files

    def _gradcam_reflections(self):
        from cctbx.array_family import flex

        from ml_phasing.prediction import interpretation

        g = self.params.grad_cam
        target = self._target()
        weighting = self._weighting()
        r = interpretation.extension_grad_cam(
            self.bundle, self.f_obs, self.layer, target, g.threshold, self.params.d_min_target, self.device, weighting
        )
        m = r["measured"]
        print(
            f"Grad-CAM of {self.layer} (activations {r['layer_shape']}) for target={target} on the hkl box "
            f"{tuple(r['cam_box'].shape)}; {int(m.sum())} measured, {int((~m).sum())} predicted reflections to "
            f"{r['d_min_target']:.2f} A ({weighting} weighting)",
            file=self.logger,
        )
        self._zero_note(r, weighting)
        share = float(r["cam"][m].sum() / max(r["cam"].sum(), 1e-30))
        print(f"  {100 * share:.0f}% of the per-reflection Grad-CAM lies on measured reflections", file=self.logger)
        complete = r["complete"]
        columns = [
            (
                complete.array(data=flex.double(r["f_pred"].astype(np.float64))).set_observation_type_xray_amplitude(),
                "F_EXT",
            ),
            (complete.array(data=flex.double(r["cam"])), "GRADCAM", "R"),
        ]
        files = self._write_mtz(columns, "ml_phasing.interpret Grad-CAM")
        interpretation.box_sections_png(f"{self.prefix}_gradcam.png", r, f"Grad-CAM of {self.layer}, target {target}")
        files.append(f"{self.prefix}_gradcam.png")
        return {
            "target": target,
            "weighting": weighting,
            "d_min_target": r["d_min_target"],
            "layer_shape": list(r["layer_shape"]),
            "raw_max": r["raw_max"],
            "fraction_on_measured": share,
            "n_measured": int(m.sum()),
            "n_predicted": int((~m).sum()),
        }, files

    def _gradcam_cube(self):
        from cctbx import miller
        from cctbx.array_family import flex

        from ml_phasing.prediction import intensity_prediction, interpretation

        g = self.params.grad_cam
        target = self._target()
        weighting = self._weighting()
        r = interpretation.intensity_grad_cam(
            self.bundle, self.f_obs, self.composition, self.layer, target, g.threshold, self.device, weighting
        )
        h = r["h_max"]
        scale = intensity_prediction.scale_summary(
            self.composition, bool(self.params.composition), r["f000"], r["scale_note"]
        )
        print(
            f"Grad-CAM ({weighting} weighting) of {self.layer} (activations {r['layer_shape']}) for "
            f"target={target} on the |F|^2 cube -{h}..{h}; {scale}",
            file=self.logger,
        )
        self._zero_note(r, weighting)
        # per reflection of the data: the mean over its symmetry mates and Friedel mates in the cube
        lookup = {tuple(int(i) for i in hkl): v for hkl, v in zip(r["indices"], r["cam"])}
        group = self.f_obs.space_group()
        keep, values = flex.bool(), flex.double()
        for index in self.f_obs.indices():
            mates = [m.h() for m in miller.sym_equiv_indices(group, index).indices()]
            mates += [tuple(-i for i in m) for m in mates]
            inside = all(max(abs(i) for i in m) <= h for m in mates)
            keep.append(inside)
            if inside:
                values.append(float(np.mean([lookup[m] for m in mates])))
        column = self.f_obs.select(keep).customized_copy(data=values, sigmas=None)
        files = self._write_mtz([(column, "GRADCAM", "R")], "ml_phasing.interpret Grad-CAM")
        centre = float(r["cam_cube"][h, h, h])
        print(
            f"  GRADCAM on {keep.count(True)} of {self.f_obs.size()} reflections (those in the cube); "
            f"at 000 (F000): {centre:.2f}",
            file=self.logger,
        )
        interpretation.cube_sections_png(
            f"{self.prefix}_gradcam.png",
            r,
            f"Grad-CAM of {self.layer}, target {target} ({os.path.basename(self.model_path)})",
        )
        files.append(f"{self.prefix}_gradcam.png")
        return {
            "target": target,
            "weighting": weighting,
            "h_max": h,
            "composition": self.composition,
            "layer_shape": list(r["layer_shape"]),
            "raw_max": r["raw_max"],
            "n_reflections": int(keep.count(True)),
            "cam_at_origin": centre,
        }, files

    def _attention(self):
        from cctbx.array_family import flex

        from ml_phasing.prediction import interpretation

        r = interpretation.extension_attention(
            self.bundle, self.f_obs, self.layer, self.params.d_min_target, self.device
        )
        m = r["token_measured"]
        print(
            f"Attention of {self.layer} ({r['heads']} heads averaged) and rollout: {int(m.sum())} measured, "
            f"{int(r['token_predicted'].sum())} predicted reflections to {r['d_min_target']:.2f} A",
            file=self.logger,
        )
        complete = r["complete"]
        sel = flex.bool(m.tolist())
        measured_set = complete.select(sel)
        columns = [
            (
                complete.array(data=flex.double(r["f_pred"].astype(np.float64))).set_observation_type_xray_amplitude(),
                "F_EXT",
            ),
            (measured_set.array(data=flex.double(r["attention_layer"][m])), "ATTN", "R"),
            (measured_set.array(data=flex.double(r["attention_rollout"][m])), "ATTN_ROLL", "R"),
        ]
        files = self._write_mtz(columns, "ml_phasing.interpret attention")
        interpretation.attention_png(f"{self.prefix}_attention.png", r, f"Attention, {self.layer}")
        files.append(f"{self.prefix}_attention.png")
        top = np.argsort(r["attention_layer"])[::-1][:5]
        idx = r["indices"]
        strongest = [
            {"hkl": [int(v) for v in idx[j]], "d": float(r["d"][j]), "attention": float(r["attention_layer"][j])}
            for j in top
            if m[j]
        ]
        for s in strongest:
            print(f"  {tuple(s['hkl'])} d={s['d']:.2f} A receives {s['attention']:.4f}", file=self.logger)
        return {
            "d_min_target": r["d_min_target"],
            "heads": r["heads"],
            "n_measured": int(m.sum()),
            "n_predicted": int(r["token_predicted"].sum()),
            "most_attended": strongest,
        }, files

    def _write_mtz(self, columns, title) -> list:
        from ml_phasing.io import map_io

        path = f"{self.prefix}.mtz"
        f = self.f_obs
        map_io.write_mtz(path, [(f, "F")] + columns, title=title)
        return [path]


def _origin_fraction(cam: np.ndarray, unit_cell, radius: float) -> float:
    """Fraction of a map's sum within ``radius`` (A) of the grid origin (periodic)."""
    import torch

    from ml_phasing.prediction.interpretation import sphere_around_maximum

    total = cam.sum()
    if total <= 0:
        return 0.0
    y = torch.zeros((1, 1) + cam.shape)
    y[0, 0, 0, 0, 0] = 1.0  # the sphere is centred on the highest point: the origin
    inside = sphere_around_maximum(unit_cell, radius)(y)[0, 0].numpy()
    return float(cam[inside].sum() / total)
