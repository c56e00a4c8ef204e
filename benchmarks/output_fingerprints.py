"""Fingerprints of every program's outputs on a fixed set of inputs, to show that a refactor
changes no output (issue 14: "show identical outputs on a fixed set of examples, before and
after").

Runs simulate (three datasets), patterson_to_density (the shipped model, no rotations, and
two models trained here, one a unet3d of depth 2 on a 9.5 x 9.0 x 9.8 A cell), extend_resolution
(the shipped model, an fft_unet and a transformer trained here), evaluate, solve and six
two-epoch trainings, and records the MTZ columns (sums and md5 of values rounded to 1e-3),
the weights (md5 of values rounded to 1e-6), task configs and histories.

Run on the old checkout, then on the new, and compare (timing columns are ignored):
  python benchmarks/output_fingerprints.py before.json
  python benchmarks/output_fingerprints.py after.json
  python benchmarks/output_fingerprints.py --compare before.json after.json
"""

import boost_adaptbx.boost.python  # noqa
import torch  # noqa
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import numpy as np

TIMING = ("train_seconds", "examples_per_second", "cpu_hours_total", "examples_total", "compute")


def _strip(v):
    if isinstance(v, dict):
        return {k: _strip(x) for k, x in v.items() if k not in TIMING}
    if isinstance(v, str) and v.startswith("epoch,"):
        rows = [r.split(",") for r in v.strip().splitlines()]
        keep = [i for i, name in enumerate(rows[0]) if name not in TIMING]
        return [[r[i] for i in keep if i < len(r)] for r in rows]
    return v


if len(sys.argv) == 4 and sys.argv[1] == "--compare":
    import json as _json

    a, b = (_json.load(open(p)) for p in sys.argv[2:])
    diffs = [k for k in sorted(set(a) | set(b)) if _strip(a.get(k)) != _strip(b.get(k))]
    for k in diffs:
        print("differs:", k)
    print(f"{len(set(a) | set(b)) - len(diffs)} of {len(set(a) | set(b))} fingerprints identical")
    sys.exit(0)

BIN = os.path.dirname(sys.executable)
out = {}
work = tempfile.mkdtemp(prefix="fp_")


def run(*args):
    p = subprocess.run([os.path.join(BIN, args[0]), *args[1:]], cwd=work, capture_output=True, text=True)
    if p.returncode != 0:
        return "EXIT %d: %s" % (p.returncode, (p.stderr.strip().splitlines() or ["?"])[-1][:200])
    return "ok"


def mtz_fp(path):
    import gemmi

    m = gemmi.read_mtz_file(os.path.join(work, path))
    res = {}
    for c in m.columns:
        a = np.array(c, dtype=np.float64)
        a = np.nan_to_num(a, nan=-999)
        res[c.label] = [
            round(float(a.sum()), 3),
            round(float(np.abs(a).sum()), 3),
            hashlib.md5(np.round(a, 3).tobytes()).hexdigest()[:10],
        ]
    return res


def state_fp(path):
    blob = torch.load(os.path.join(work, path), weights_only=True)
    sd = blob["state_dict"]
    h = hashlib.md5()
    for k in sorted(sd):
        h.update(np.round(sd[k].double().numpy(), 6).tobytes())
    return {
        "weights": h.hexdigest()[:12],
        "task_config": {k: v for k, v in blob["task_config"].items() if k != "dataset_parameters"},
        "metrics": blob.get("metrics"),
    }


out["sim_diala"] = run(
    "ml_phasing.simulate",
    "source=peptides",
    "n_examples=40",
    "write_examples=2",
    "d_min_low=1.5",
    "d_min_high=1.5",
    "random_seed=7",
    "output.directory=diala",
)
out["sim_small"] = run(
    "ml_phasing.simulate",
    "n_examples=40",
    "write_examples=2",
    "d_min_low=1.6",
    "d_min_high=1.3",
    "random_atoms.space_groups=P21",
    "random_atoms.n_atoms_max=12",
    "outputs.patterson=False",
    "outputs.density=False",
    "outputs.intensity_grid=True",
    "outputs.voxel_atoms=True",
    "intensity_grid.h_max=4",
    "voxel_atoms.grid_points=12",
    "output.directory=small",
)
out["sim_ext"] = run(
    "ml_phasing.simulate",
    "n_examples=2",
    "write_examples=2",
    "d_min_low=1.2",
    "d_min_high=1.0",
    "random_seed=3",
    "output.directory=ext",
)
ex = "diala/examples/example_00000.mtz"
out["p2d"] = run("ml_phasing.patterson_to_density", ex, "output.prefix=p2d")
out["p2d_mtz"] = mtz_fp("p2d.mtz") if out["p2d"] == "ok" else None
out["p2d_rot"] = run(
    "ml_phasing.patterson_to_density", ex, "ensemble.rotations=1", "refinement.cycles=0", "output.prefix=p2d_rot"
)
out["p2d_rot_mtz"] = mtz_fp("p2d_rot.mtz") if out["p2d_rot"] == "ok" else None
out["ext"] = run("ml_phasing.extend_resolution", "ext/examples/example_00000.mtz", "output.prefix=ext_out")
for f in sorted(os.listdir(work)):
    if f.startswith("ext_out") and f.endswith(".mtz"):
        out["ext_" + f] = mtz_fp(f)
out["eval"] = run(
    "ml_phasing.evaluate", "reference.file=" + ex, "reference.labels=FC,PHIC", "prediction.file=p2d.mtz", "--json"
)
if os.path.exists(os.path.join(work, "evaluate_result.json")):
    out["eval_json"] = json.load(open(os.path.join(work, "evaluate_result.json")))
SMALLP = [
    "model.patterson_unet.stem_channels=3",
    "model.patterson_unet.channels=4",
    "model.patterson_unet.n_blocks=1",
    "model.patterson_unet.kernel_size=3",
    "model.patterson_unet.decoder_kernel_size=3",
]
CASES = {
    "patterson_unet": ["train.data.train=diala", "train.task=patterson_to_density", *SMALLP],
    "unet3d_patterson": [
        "train.data.train=diala",
        "model.architecture=unet3d",
        "model.unet3d.base_channels=3",
        "model.unet3d.depth=2",
    ],
    "unet3d_intensity": [
        "train.data.train=small",
        "task=intensity_to_density",
        "model.architecture=unet3d",
        "model.unet3d.base_channels=3",
        "model.unet3d.depth=1",
    ],
    "mlp_intensity": [
        "train.data.train=small",
        "task=intensity_to_density",
        "model.architecture=mlp",
        "model.mlp.hidden=16",
    ],
    "fft_unet_extend": [
        "train.data.train=small",
        "task=extend_resolution",
        "model.architecture=fft_unet",
        "model.fft_unet.base_channels=3",
        "model.fft_unet.depth=1",
    ],
    "transformer_extend": [
        "train.data.train=small",
        "task=extend_resolution",
        "model.architecture=xrd_transformer",
        "model.xrd_transformer.dim=16",
        "model.xrd_transformer.depth=1",
        "model.xrd_transformer.heads=2",
        "model.xrd_transformer.dropout=0",
    ],
}
for name, args in CASES.items():
    out["train_" + name] = run(
        "ml_phasing.train",
        *args,
        "epochs=2",
        "batch_size=8",
        "optimizer.learning_rate=3e-3",
        f"output.directory=run_{name}",
    )
    if out["train_" + name] == "ok":
        out["train_" + name + "_model"] = state_fp(f"run_{name}/model.pt")
        out["train_" + name + "_history"] = open(os.path.join(work, f"run_{name}/history.csv")).read()
# a model of ours on a cell whose grid is not a multiple of its pad (issue 14's traceback)
out["p2d_unet3d"] = run(
    "ml_phasing.patterson_to_density", ex, "model=run_unet3d_patterson/model.pt", "output.prefix=p2d_u3"
)
out["p2d_unet3d_mtz"] = mtz_fp("p2d_u3.mtz") if out["p2d_unet3d"] == "ok" else None
out["p2d_unet3d_cell"] = run(
    "ml_phasing.patterson_to_density",
    ex,
    "model=run_unet3d_patterson/model.pt",
    "symmetry.unit_cell=9.5,9.0,9.8,90,90,90",
    "output.prefix=p2d_u3c",
)
out["p2d_unet3d_cell_mtz"] = mtz_fp("p2d_u3c.mtz") if out["p2d_unet3d_cell"] == "ok" else None
out["p2d_own"] = run(
    "ml_phasing.patterson_to_density", ex, "model=run_patterson_unet/model.pt", "output.prefix=p2d_own"
)
out["p2d_own_mtz"] = mtz_fp("p2d_own.mtz") if out["p2d_own"] == "ok" else None
out["ext_own"] = run(
    "ml_phasing.extend_resolution",
    "small/examples/example_00000.mtz",
    "model=run_fft_unet_extend/model.pt",
    "output.prefix=ext_own",
)
for f in sorted(os.listdir(work)):
    if f.startswith("ext_own") and f.endswith(".mtz"):
        out["extown_" + f] = mtz_fp(f)
out["ext_tok"] = run(
    "ml_phasing.extend_resolution",
    "small/examples/example_00000.mtz",
    "model=run_transformer_extend/model.pt",
    "output.prefix=ext_tok",
)
for f in sorted(os.listdir(work)):
    if f.startswith("ext_tok") and f.endswith(".mtz"):
        out["exttok_" + f] = mtz_fp(f)
out["solve"] = run("ml_phasing.solve", ex, "composition=C6 N2 O2", "--json", "output.prefix=slv")
if os.path.exists(os.path.join(work, "solve_result.json")):
    j = json.load(open(os.path.join(work, "solve_result.json")))
    out["solve_json"] = {k: j[k] for k in j if k in ("solved", "r1", "cc", "best_start", "figures_of_merit")}
json.dump(out, open(sys.argv[1], "w"), indent=1, sort_keys=True, default=str)
print(work)
