"""Fine-tuning an extension model on a dataset whose hkl box is smaller than the model's (issue 15):
the examples are laid out in the model's box, exactly where the model reads them (as in a dataset
that spanned that box, and as inference lays out a user's data); a dataset that does not fit is
refused; the fine-tuned model serves the space groups of the model and of the new data."""

import boost_adaptbx.boost.python  # noqa: F401
import torch

import glob
import json
import shutil

import h5py
import numpy as np
import pytest
from libtbx.utils import Sorry

from conftest import assert_clean_exit, run_script

GROW_MIN, GROW_MAX = np.array([2, 1, 0]), np.array([1, 2, 3])  # the model's box: the data's, widened


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    base = tmp_path_factory.mktemp("finetune_layout")
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "n_examples=4",
            "d_min_low=1.6",
            "d_min_high=1.3",
            "random_atoms.space_groups=P21",
            "random_atoms.n_atoms_min=6",
            "random_atoms.n_atoms_max=8",
            "outputs.patterson=False",
            "outputs.density=False",
            "output.directory=small",
            cwd=base,
        )
    )
    return base


def _model(work, box_min, box_max, space_groups, name):
    """A tiny (untrained) dense extension model with this hkl box and these space groups."""
    from ml_phasing.models import ARCHITECTURES, model_file
    from ml_phasing.tasks.extension import ExtendResolution

    config = ExtendResolution.config_from_dataset(ExtendResolution.open_dataset(str(work / "small")))
    config.update(
        hkl_box_min=[int(x) for x in box_min],
        hkl_box_max=[int(x) for x in box_max],
        space_group_numbers=list(space_groups),
        max_index=int(max(np.abs(box_min).max(), np.abs(box_max).max())),
    )
    kwargs = dict(in_channels=4, out_channels=1, depth=1, base_channels=3, fft_layers=1, out_activation="softplus")
    torch.manual_seed(0)
    path = work / name
    model_file.save_model(str(path), ARCHITECTURES["fft_unet"](**kwargs), "fft_unet", kwargs, config)
    return path


def _data_box(work):
    from ml_phasing.dataset import SimulatedDataset

    lo, hi = SimulatedDataset(str(work / "small")).reflection_hkl_box
    return np.array(lo), np.array(hi)


def _trainer(work, *args):
    from iotbx import phil as iphil
    from libtbx.utils import null_out

    from ml_phasing.programs.train import Program
    from ml_phasing.training import Trainer

    master = iphil.parse(Program.master_phil_str, process_includes=True)
    text = "\n".join(["train.task=extend_resolution", "train.threads=1", f"output.directory={work / 'out'}", *args])
    params = master.fetch(iphil.parse(text)).extract()
    return Trainer(params, "cpu", null_out())


def test_smaller_box_lands_where_the_model_reads(work):
    from cctbx import crystal, miller, sgtbx
    from cctbx.array_family import flex

    from ml_phasing.dataset import SimulatedDataset
    from ml_phasing.training.loop import TaskDataset

    lo, hi = _data_box(work)
    model_lo, model_hi = lo - GROW_MIN, hi + GROW_MAX
    path = _model(work, model_lo, model_hi, [1, 2], "wide.pt")
    small = str(work / "small")
    trainer = _trainer(work, f"train.init_model={path}", f"train.data.train={small}", f"train.data.validation={small}")
    assert trainer.task_config["hkl_box_min"] == model_lo.tolist()
    assert trainer.task_config["hkl_box_max"] == model_hi.tolist()

    # the same examples recorded with the model's box (what benchmarks/finetune_extension.py used to do)
    widened = work / "widened"
    shutil.copytree(small, widened)
    for shard in glob.glob(str(widened / "shard_*.h5")):
        with h5py.File(shard, "r+") as f:
            f.attrs["hkl_box_min"], f.attrs["hkl_box_max"] = model_lo, model_hi
    recorded = SimulatedDataset(str(widened), fields=list(trainer.task.fields), dense_amplitudes=True)
    reference = TaskDataset(recorded, trainer.task, range(len(recorded)))
    shape = tuple(int(x) for x in model_hi - model_lo + 1)
    for data in (trainer.train_data, trainer.val_data):
        assert len(data) == len(reference) == 4
        for i in range(len(data)):
            x, y = data[i]["x"], data[i]["y"]
            assert tuple(x.shape) == (4, *shape)
            assert torch.equal(x, reference[i]["x"]) and torch.equal(y, reference[i]["y"])

    # and as inference lays out a user's data: the measured amplitudes of the same example
    base, data = trainer.train_base, trainer.train_data
    for i in range(len(base)):
        meta, item = base.meta(i), base[i]
        group = sgtbx.space_group_info(f"Hall: {meta['hall_symbol']}")
        symmetry = crystal.symmetry(meta["unit_cell"], space_group_info=group)
        measured = item["reflections/measured"].astype(bool)
        indices = flex.miller_index([tuple(int(v) for v in h) for h in item["reflections/indices"][measured]])
        f_obs = miller.array(
            miller.set(symmetry, indices, anomalous_flag=False), flex.double(item["reflections/f"][measured].tolist())
        )
        complete = miller.build_set(symmetry, anomalous_flag=False, d_min=meta["d_min_high"])
        x_inference, x_training = trainer.task.build_batch(complete, meta["d_min_high"], f_obs)[0]["x"][0], data[i]["x"]
        # |F|/s and the measured / to-predict masks at the same voxels; 1/d^2 to float32 rounding
        # (the metadata's cell has 6 decimals)
        assert torch.equal(x_inference[[0, 2, 3]], x_training[[0, 2, 3]])
        assert torch.allclose(x_inference[1], x_training[1], rtol=0, atol=1e-6)


def test_finetuned_model_keeps_box_and_serves_both_space_group_lists(work):
    from cctbx import crystal, miller

    from ml_phasing.models import model_file

    lo, hi = _data_box(work)
    path = _model(work, lo - GROW_MIN, hi + GROW_MAX, [2], "p-1.pt")
    assert_clean_exit(
        run_script(
            "ml_phasing.train",
            "train.data.train=small",
            "task=extend_resolution",
            f"init_model={path}",
            "epochs=1",
            "batch_size=2",
            "threads=1",
            "output.directory=tuned",
            "--json",
            "--overwrite",
            cwd=work,
        )
    )
    result = json.loads((work / "train_result.json").read_text())
    config = model_file.read_model_file(result["model_file"])["task_config"]
    assert config["space_group_numbers"] == [2, 4]  # the model's P-1 and the data's P21
    assert config["hkl_box_min"] == (lo - GROW_MIN).tolist() and config["hkl_box_max"] == (hi + GROW_MAX).tolist()
    bundle = model_file.load_bundle(result["model_file"], task="extend_resolution", device="cpu")

    def data(symbol, beta):
        ms = miller.build_set(crystal.symmetry((5, 6, 7, 90, beta, 90), symbol), False, d_min=1.6)
        return ms.array(data=ms.d_spacings().data())

    bundle.task.check_supported(data("P -1", 95))  # no Sorry: both space groups are served
    bundle.task.check_supported(data("P 1 21 1", 95))
    with pytest.raises(Sorry, match="has not seen space group"):
        bundle.task.check_supported(data("P 21 21 21", 90))


def test_dataset_outside_the_models_box_is_refused(work):
    lo, hi = _data_box(work)
    narrow = hi.copy()
    narrow[2] -= 1  # l of the data reaches one further than the model's box
    path = _model(work, lo, narrow, [4], "narrow.pt")
    proc = run_script(
        "ml_phasing.train",
        "train.data.train=small",
        "task=extend_resolution",
        f"init_model={path}",
        "epochs=1",
        "output.directory=refused",
        "--overwrite",
        cwd=work,
    )
    assert_clean_exit(proc, 1)
    assert proc.stderr.lstrip().startswith("Sorry:"), proc.stderr
    assert f"outside the model's box {lo.tolist()}..{narrow.tolist()}" in proc.stderr, proc.stderr
    assert f"l up to {hi[2]} (box to {narrow[2]})" in proc.stderr, proc.stderr


def test_lay_out_refuses_reflections_outside_the_box(work):
    from ml_phasing.dataset import SimulatedDataset

    lo, hi = _data_box(work)
    ds = SimulatedDataset(str(work / "small"), dense_amplitudes=True)
    with pytest.raises(Sorry, match=r"h down to"):
        ds.lay_out_in_hkl_box(lo + np.array([1, 0, 0]), hi, "the model's")
    ds.lay_out_in_hkl_box(lo - 1, hi + 1)
    assert ds[0]["hkl_box"].shape[1:] == tuple(int(x) for x in hi - lo + 3)
