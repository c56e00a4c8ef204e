"""ml_phasing.train through its console script: every task, resume, DDP, bad input."""

import json
import os
import shlex
import subprocess
import sys

import pytest
import torch

from conftest import assert_clean_exit, run_script

SMALL_PATTERSON = [
    "model.patterson_unet.stem_channels=3",
    "model.patterson_unet.channels=4",
    "model.patterson_unet.n_blocks=1",
    "model.patterson_unet.kernel_size=3",
    "model.patterson_unet.decoder_kernel_size=3",
]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("train")
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "source=peptides",
            "n_examples=40",
            "d_min_low=1.5",
            "d_min_high=1.5",
            "output.directory=diala",
            cwd=base,
        )
    )
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "n_examples=40",
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
            cwd=base,
        )
    )
    return base


def train(cwd, *args):
    proc = run_script("ml_phasing.train", *args, "--json", "--overwrite", cwd=cwd)
    assert_clean_exit(proc)
    return json.loads((cwd / "train_result.json").read_text())


CASES = {
    "patterson_unet": ["train.data.train=diala", "train.task=patterson_to_density", *SMALL_PATTERSON],
    "patterson_unet_hand_invariant": ["train.data.train=diala", "loss.invariance=origin_and_hand", *SMALL_PATTERSON],
    "unet3d_patterson": [
        "train.data.train=diala",
        "model.architecture=unet3d",
        "model.unet3d.base_channels=3",
        "model.unet3d.depth=1",
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


# Every architecture and task keeps one case in the default tier; the variants that repeat one
# (30 s each) run with -m slow.
SLOW_CASES = {"patterson_unet_hand_invariant", "unet3d_patterson"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in sorted(CASES)]
)
def test_smoke_training_lowers_the_loss(datasets, name):
    res = train(
        datasets,
        *CASES[name],
        "epochs=3",
        "batch_size=8",
        "optimizer.learning_rate=3e-3",
        f"output.directory=run_{name}",
    )
    history = res["history"]
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    from ml_phasing.models.model_file import load_bundle

    info = load_bundle(res["model_file"]).info
    assert info["architecture"] == res["architecture"] and info["metrics"]["epoch"] >= 1
    blob = torch.load(res["model_file"], weights_only=True)  # no pickled code needed
    assert blob["task_config"]["task"] in ("patterson_to_density", "intensity_to_density", "extend_resolution")
    out = datasets / f"run_{name}"
    for f in ("history.csv", "history.png", "checkpoint.pt", "train.log", "model.pt"):
        assert (out / f).stat().st_size > 0
    log = (out / "train.log").read_text()
    assert "random_seed: 0" in log and "device: cpu" in log and "ml_phasing.train 0." in log


def test_resume_equals_uninterrupted(datasets):
    common = [
        "train.data.train=diala",
        *SMALL_PATTERSON,
        "batch_size=8",
        "model.patterson_unet.norm=none",
        "schedule.kind=exponential",
    ]
    train(datasets, *common, "epochs=2", "output.directory=straight")
    train(datasets, *common, "epochs=1", "output.directory=resumed")
    res = train(datasets, *common, "epochs=2", "resume=True", "output.directory=resumed")
    assert len(res["history"]) == 2
    a = torch.load(datasets / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(datasets / "resumed" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 1
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
    # the resumed run appended to train.log; a rerun without resume=True or --overwrite replaces nothing
    assert (datasets / "resumed" / "train.log").read_text().count("ml_phasing.train 0") >= 2
    before = (datasets / "straight" / "checkpoint.pt").read_bytes()
    proc = run_script("ml_phasing.train", *common, "epochs=2", "output.directory=straight", cwd=datasets)
    assert proc.returncode == 1 and "Sorry:" in proc.stderr and "resume=True" in proc.stderr
    assert (datasets / "straight" / "checkpoint.pt").read_bytes() == before


def test_fresh_examples_on_the_fly_resume_and_compute(datasets):
    """Issue 11: train.data.simulate= makes examples on the fly from a recipe (seeded from
    (random_seed, example number), fresh ones every epoch, a held-out stream for validation);
    a resumed run equals an uninterrupted one, and the model file records the compute spent,
    continued across resumes and from the model it was fine-tuned from."""
    recipe = datasets / "recipe.eff"
    recipe.write_text(
        "simulate { source = peptides\n d_min_low = 1.5\n d_min_high = 1.5\n"
        " peptides { b_iso_max = 60\n b_iso_distribution = pdb }\n noise { relative_sigma = 0.03 }\n"
        " outputs { amplitudes = False }\n maps { grid_step = 0.5 } }\n"
    )
    common = [
        f"train.data.simulate={recipe}",
        "examples_per_epoch=16",
        "validation_examples=8",
        *SMALL_PATTERSON,
        "batch_size=8",
        "model.patterson_unet.norm=none",
        "schedule.kind=exponential",
        "threads=1",
    ]
    straight = train(datasets, *common, "epochs=2", "output.directory=otf_straight")
    train(datasets, *common, "epochs=1", "output.directory=otf_resumed")
    resumed = train(datasets, *common, "epochs=2", "resume=True", "output.directory=otf_resumed")
    a = torch.load(datasets / "otf_straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(datasets / "otf_resumed" / "checkpoint.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [r["examples_seen"] for r in straight["history"]] == [16, 16]
    assert straight["history"][0]["train_loss"] != straight["history"][1]["train_loss"]
    blob = torch.load(resumed["model_file"], weights_only=True)
    assert blob["compute"]["examples_seen"] == 32 and blob["compute"]["cpu_hours"] > 0
    assert blob["task_config"]["grid"] == [20, 20, 20]
    tuned = train(datasets, *common, "epochs=1", f"init_model={resumed['model_file']}", "output.directory=otf_ft")
    compute = torch.load(tuned["model_file"], weights_only=True)["compute"]
    assert compute["examples_seen"] == 48 and compute["fine_tuned_from"] == resumed["model_file"]
    proc = run_script("ml_phasing.train", "train.data.train=diala", f"train.data.simulate={recipe}", cwd=datasets)
    assert proc.returncode == 1 and "not both" in proc.stderr


def test_recycling_trains_and_predicts(datasets):
    """recycling_passes=3: the model takes the Patterson and its own previous estimate, the model
    file says so, and ml_phasing.patterson_to_density runs the passes on a user's data."""
    res = train(
        datasets,
        "train.data.train=diala",
        *SMALL_PATTERSON,
        "recycling_passes=3",
        "epochs=1",
        "batch_size=8",
        "output.directory=recycled",
    )
    blob = torch.load(res["model_file"], weights_only=True)
    assert blob["task_config"]["recycling_passes"] == 3 and blob["model_kwargs"]["in_channels"] == 2
    # batch-norm statistics per pass, re-estimated before validation and kept in the model file
    assert blob["model_kwargs"]["norm_passes"] == 3
    stats = blob["state_dict"]["encoder.0.1.pass_running_var"]
    assert stats.shape[0] == 3 and not torch.allclose(stats[0], stats[1])
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "source=peptides",
            "n_examples=1",
            "write_examples=1",
            "d_min_low=1.5",
            "d_min_high=1.5",
            "random_seed=11",
            "output.directory=one",
            cwd=datasets,
        )
    )
    mtz = datasets / "one" / "examples" / "example_00000.mtz"
    proc = run_script(
        "ml_phasing.patterson_to_density",
        mtz,
        f"model={res['model_file']}",
        "output.prefix=recycled_p2d",
        cwd=datasets,
    )
    assert_clean_exit(proc)
    assert (datasets / "recycled_p2d.mtz").stat().st_size > 0


def test_keep_last_writes_the_last_epoch(datasets):
    """keep=last: the model file holds the last epoch's weights (the checkpoint's), whatever
    the validation loss did; the default would keep the epoch with the lowest one."""
    common = ["train.data.train=diala", *SMALL_PATTERSON, "epochs=2", "batch_size=8", "model.patterson_unet.norm=none"]
    res = train(datasets, *common, "keep=last", "output.directory=keep_last")
    blob = torch.load(res["model_file"], weights_only=True)
    checkpoint = torch.load(datasets / "keep_last" / "checkpoint.pt", weights_only=True)
    assert blob["kept"] == "last" and blob["best_epoch"] == 2 == res["best_epoch"]
    for key in checkpoint["model"]:
        assert torch.equal(blob["state_dict"][key], checkpoint["model"][key]), key
    assert "(epoch 2, last epoch)" in (datasets / "keep_last" / "train.log").read_text()
    # what the default (keep=lowest_loss) would have written: the epoch with the lowest loss
    assert checkpoint["best"]["epoch"] == min(res["history"], key=lambda r: r["val_loss"])["epoch"]


def test_fine_tuning_with_frozen_layers(datasets):
    res = train(datasets, "train.data.train=diala", *SMALL_PATTERSON, "epochs=1", "output.directory=base")
    base = torch.load(res["model_file"], weights_only=True)["state_dict"]
    res2 = train(
        datasets,
        "train.data.train=diala",
        f"init_model={res['model_file']}",
        "freeze=encoder",
        "optimizer.learning_rate=1e-4",
        "epochs=1",
        "output.directory=tuned",
    )
    tuned = torch.load(res2["model_file"], weights_only=True)["state_dict"]
    frozen = [k for k in base if k.startswith("encoder") and k.endswith("weight")]
    assert frozen and all(torch.equal(base[k], tuned[k]) for k in frozen)
    assert any(not torch.equal(base[k], tuned[k]) for k in base if k.startswith("trunk") and "weight" in k)


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over loopback")
def test_two_process_ddp(datasets):
    """torchrun with two CPU processes (gloo): both train, rank 0 writes the model."""
    args = [
        "train.data.train=diala",
        *SMALL_PATTERSON,
        "epochs=2",
        "batch_size=4",
        "output.directory=ddp",
        "--overwrite",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "ml_phasing.command_line.train",
            *args,
        ],
        cwd=datasets,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (datasets / "ddp" / "train.log").read_text()
    assert "world size 2" in log
    from ml_phasing.models.model_file import load_bundle

    load_bundle(str(datasets / "ddp" / "model.pt"), task="patterson_to_density")


@pytest.mark.parametrize(
    "args, message",
    [
        (["epochs=1"], "train.data.train (a dataset directory"),
        (["train.data.train=nowhere"], "Not found"),
        (["train.data.train=small"], "needs simulate outputs"),
        (["train.data.train=diala", "model.architecture=xrd_transformer"], "xrd_transformer is for"),
        (
            [
                "train.data.train=diala",
                *SMALL_PATTERSON,
                "optimizer.learning_rate=1e30",
                "clip_grad_norm=0",
                "epochs=3",
            ],
            "non-finite",
        ),
        (["train.data.train=diala", *SMALL_PATTERSON, "freeze=nothing_like_this"], "no parameter starts"),
        (["train.data.train=diala", "init_model=garbage.pt"], "Cannot read model file"),
        (["train.data.train=diala", "device=cuda"], "CUDA"),
        (["train.data.train=diala", "resume=True", "output.directory=fresh"], "no checkpoint"),
    ],
)
def test_bad_parameters_give_sorry(datasets, args, message):
    (datasets / "garbage.pt").write_bytes(b"not a model")
    if message == "CUDA" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = run_script("ml_phasing.train", *args, "--overwrite", cwd=datasets)
    assert_clean_exit(proc, 1)
    assert proc.stderr.lstrip().startswith("Sorry:") and message in proc.stderr, proc.stderr


def _help_examples():
    from ml_phasing.programs.train import Program

    text = Program.description.replace("\\\n", " ")
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("ml_phasing.train ")]


@pytest.mark.parametrize("command", _help_examples())
def test_help_examples_validate(datasets, command, tmp_path):
    import shutil

    shutil.copytree(datasets / "diala", tmp_path / "diala")
    shutil.copytree(datasets / "diala", tmp_path / "real_set")
    shutil.copytree(datasets / "small", tmp_path / "random_set")
    if "init_model" in command or "resume" in command:
        # These examples continue earlier work: give them a model file and a checkpoint.
        assert_clean_exit(
            run_script(
                "ml_phasing.train",
                "train.data.train=diala",
                *SMALL_PATTERSON,
                "epochs=1",
                "output.directory=diala_model",
                cwd=tmp_path,
            )
        )
    proc = run_script("ml_phasing.train", *shlex.split(command)[1:], "--dry-run", cwd=tmp_path)
    assert_clean_exit(proc)
