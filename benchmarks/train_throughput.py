"""Training throughput: ml_phasing.train against a bare torch loop over the same model and tensors.

For each task and network (small configurations, CPU unless a GPU is visible):
* examples/s of ml_phasing.train (second epoch: data read from the HDF5 shards,
  normalised, collated, forward, loss, backward, clipping, optimiser step);
* the same steps in a bare loop over pre-built tensors in memory: the floor;
* the ratio (goal <= 1.15);
* peak memory of whole training runs on datasets of N and 4N examples (goal: flat).

Then, for the Patterson-to-density network, the ratio as issue 11 asks for it: the program
from shards, the program with examples made on the fly (train.data.simulate=), made either in
the training process between steps (num_workers=0) or by one DataLoader worker on a second core
(num_workers=1, the setting for a 2-core machine), and the bare loop, interleaved and repeated
REPEATS times on one training thread each, so that whatever else the machine does falls on all
of them alike; the median ratio and its spread (min-max).

Run: python benchmarks/train_throughput.py [n_examples] [repeats] [interleaved]
(the word "interleaved" runs only that part)
"""

import boost_adaptbx.boost.python  # noqa: F401
import torch

import csv
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

from iotbx.cli_parser import run_program
from libtbx.utils import null_out

from ml_phasing.models.model_file import load_bundle
from ml_phasing.programs.simulate import Program as Simulate
from ml_phasing.programs.train import Program as Train
from ml_phasing.training import TaskDataset, batches_for_epoch

N = int(sys.argv[1]) if len(sys.argv) > 1 else 256
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BATCH = 16

CASES = [
    (
        "patterson_to_density",
        "patterson_unet",
        "peptides",
        [
            "model.patterson_unet.stem_channels=8",
            "model.patterson_unet.channels=16",
            "model.patterson_unet.n_blocks=2",
            "model.patterson_unet.kernel_size=3",
            "model.patterson_unet.decoder_kernel_size=3",
        ],
    ),
    ("patterson_to_density", "unet3d", "peptides", ["model.unet3d.base_channels=8"]),
    ("intensity_to_density", "mlp", "random", ["model.mlp.hidden=256"]),
    ("extend_resolution", "fft_unet", "random", ["model.fft_unet.base_channels=8", "model.fft_unet.depth=1"]),
    (
        "extend_resolution",
        "xrd_transformer",
        "random",
        ["model.xrd_transformer.dim=64", "model.xrd_transformer.depth=2", "model.xrd_transformer.dropout=0"],
    ),
]


def simulate(directory, source, n):
    common = [f"n_examples={n}", "nproc=2", f"output.directory={directory}"]
    if source == "peptides":
        args = ["source=peptides", "d_min_low=1.5", "d_min_high=1.5"]
    else:
        args = [
            "random_atoms.space_groups=P21",
            "d_min_low=1.6",
            "d_min_high=1.3",
            "outputs.patterson=False",
            "outputs.density=False",
            "outputs.intensity_grid=True",
            "outputs.voxel_atoms=True",
            "intensity_grid.h_max=5",
            "voxel_atoms.grid_points=16",
        ]
    run_program(program_class=Simulate, args=common + args, logger=null_out())


def bare_loop(model_path, data_dir, task_name):
    """The floor: the same model, batches and optimiser steps on tensors already in memory."""
    bundle = load_bundle(model_path, device=DEVICE)
    model, task = bundle.network, bundle.task
    model.train()
    base = task.open_dataset(data_dir, tokens=task.config.get("representation") == "tokens")
    n_train = len(base) - max(1, round(0.05 * len(base)))
    data = TaskDataset(base, task, range(n_train))
    keys = [task.shape_key(base.meta(j), base, j) for j in range(n_train)]
    batches = [task.collate([data[i] for i in b]) for b in batches_for_epoch(keys, BATCH, 0, 1, True)]
    batches = [{k: v.to(DEVICE) if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in batches]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    class L:
        kind, cc_weight, invariance = "auto", 1e-3, "none"

    def epoch():
        for b in batches:
            loss = task.loss(task.forward(model, b).float(), b, L)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    epoch()  # warm-up
    t0 = time.perf_counter()
    epoch()
    return n_train / (time.perf_counter() - t0)


RECIPE = """simulate {
  source = peptides
  d_min_low = 1.5
  d_min_high = 1.5
  outputs { amplitudes = False }
  maps { grid_step = 0.5 }
}
"""


def program_epoch_seconds(args, out):
    """Seconds of the second training epoch of ml_phasing.train (the first warms up)."""
    run_program(program_class=Train, args=args + [f"output.directory={out}", "--overwrite"], logger=null_out())
    rows = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
    return float(rows[-1]["train_seconds"]), int(rows[-1]["examples_seen"])


def interleaved(tmp):
    """Median and spread of program/bare time ratios, shards and on the fly, for patterson_unet."""
    torch.set_num_threads(1)
    recipe = os.path.join(tmp, "recipe.eff")
    with open(recipe, "w") as f:
        f.write(RECIPE)
    task_name, arch, _, extra = CASES[0]
    common = [f"task={task_name}", f"model.architecture={arch}", "epochs=2", f"batch_size={BATCH}",
              f"device={DEVICE}", "threads=1"] + extra  # fmt: skip
    n_train = N - max(1, round(0.05 * N))
    shards = [f"train.data.train={os.path.join(tmp, 'peptides')}"] + common
    on_the_fly = [f"train.data.simulate={recipe}", f"examples_per_epoch={n_train}", "validation_examples=16"] + common
    programs = {
        "shards": shards,
        "on the fly": on_the_fly + ["num_workers=0"],  # made in the training process, between steps
        "on the fly, 1 worker": on_the_fly + ["num_workers=1"],  # made by a DataLoader worker (2nd core)
    }
    ratios = {name: [] for name in programs}
    for r in range(REPEATS):
        seconds = {}
        for name, args in programs.items():
            out = os.path.join(tmp, f"i_{name.replace(' ', '_').replace(',', '')}_{r}")
            seconds[name] = program_epoch_seconds(args, out)
        bare = bare_loop(os.path.join(tmp, f"i_shards_{r}", "model.pt"), os.path.join(tmp, "peptides"), task_name)
        t_bare = n_train / bare
        for name, (t, n) in seconds.items():
            ratios[name].append((t / n) / (t_bare / n_train))
        shown = ", ".join(f"{name} {values[-1]:.2f}" for name, values in ratios.items())
        print(f"  repeat {r + 1}: bare {bare:.1f} ex/s; program/bare time per example: {shown}")
    for name, values in ratios.items():
        print(
            f"patterson_unet, {name}: median ratio {np.median(values):.2f} (min {min(values):.2f}, "
            f"max {max(values):.2f}, {len(values)} interleaved repeats; goal <= 1.15)"
        )


def peak_rss_mb(args, cwd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    script = os.path.join(os.path.dirname(sys.executable), "ml_phasing.train")
    subprocess.run([script, *args, "--overwrite"], cwd=cwd, check=True, capture_output=True)
    return max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def main():
    print(f"device {DEVICE}, torch threads {torch.get_num_threads()}, {N} examples, batch {BATCH}")
    with tempfile.TemporaryDirectory() as tmp:
        if "interleaved" in sys.argv[1:]:
            simulate(os.path.join(tmp, "peptides"), "peptides", N)
            print(f"interleaved, one thread each, {REPEATS} repeats:")
            interleaved(tmp)
            return
        for source in ("peptides", "random"):
            simulate(os.path.join(tmp, source), source, N)
        print(f"{'task':22s} {'model':16s} {'train ex/s':>10s} {'bare ex/s':>10s} {'ratio':>6s}")
        for task_name, arch, source, extra in CASES:
            out = os.path.join(tmp, f"{task_name}_{arch}")
            args = [
                f"train.data.train={os.path.join(tmp, source)}",
                f"task={task_name}",
                f"model.architecture={arch}",
                "epochs=2",
                f"batch_size={BATCH}",
                f"output.directory={out}",
                f"device={DEVICE}",
                "--overwrite",
            ] + extra
            run_program(program_class=Train, args=args, logger=null_out())
            rows = list(csv.DictReader(open(os.path.join(out, "history.csv"))))
            seconds = float(rows[-1]["train_seconds"])
            n_train = N - max(1, round(0.05 * N))
            ours = n_train / seconds
            bare = bare_loop(os.path.join(out, "model.pt"), os.path.join(tmp, source), task_name)
            print(f"{task_name:22s} {arch:16s} {ours:10.1f} {bare:10.1f} {bare / ours:6.2f}")
        simulate(os.path.join(tmp, "big"), "peptides", 4 * N)
        small = peak_rss_mb(
            [
                f"train.data.train={os.path.join(tmp, 'peptides')}",
                "epochs=1",
                "model.patterson_unet.channels=8",
                f"output.directory={tmp}/m1",
            ],
            tmp,
        )
        large = peak_rss_mb(
            [
                f"train.data.train={os.path.join(tmp, 'big')}",
                "epochs=1",
                "model.patterson_unet.channels=8",
                f"output.directory={tmp}/m2",
            ],
            tmp,
        )
        print(f"peak memory of ml_phasing.train: {small:.0f} MB with {N} examples, {large:.0f} MB with {4 * N}")
        print(f"interleaved, one thread each, {REPEATS} repeats:")
        interleaved(tmp)


if __name__ == "__main__":
    main()
