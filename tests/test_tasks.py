"""One Task for training and inference (issue 14): the model file restores it, and inference
lays out a user's data exactly as training did."""

import numpy as np
import pytest
import torch
from libtbx.utils import Sorry

from ml_phasing import tasks
from ml_phasing.prediction import density_prediction
from ml_phasing.models import model_file
from ml_phasing.models import ARCHITECTURES, UNet3D, pad_multiple


def _dialanine_amplitudes(cell):
    """Amplitudes of a small peptide-like cluster in a P1 cell (1.5 A)."""
    from cctbx import crystal, xray

    rng = np.random.default_rng(3)
    sym = crystal.symmetry(unit_cell=cell, space_group_symbol="P1")
    sites = rng.uniform(0.3, 0.7, size=(10, 3))
    scatterers = [xray.scatterer(f"C{i}", site=tuple(s), u=0.1, scattering_type="C") for i, s in enumerate(sites)]
    xs = xray.structure(crystal_symmetry=sym, scatterers=xray.flex.xray_scatterer(scatterers))
    return abs(xs.structure_factors(d_min=1.5).f_calc()).set_observation_type_xray_amplitude()


def _patterson_config(pad):
    return {
        "task": "patterson_to_density",
        "normalisation": "max_abs",
        "map_d_min": 1.5,
        "grid": [20, 20, 20],
        "unit_cell": [10.0, 10.0, 10.0, 90.0, 90.0, 90.0],
        "source": "peptides",
        "dataset_parameters": "",
        "in_channels": 1,
        "out_channels": 1,
        "pad_multiple": pad,
    }


def test_inference_pads_the_grid_as_training_does(tmp_path):
    """A unet3d of depth 2 needs grids divisible by 4. Training pads to it; inference did not,
    and a 9.5 x 9.0 x 9.8 A cell (grid 20 x 18 x 20) ended in a traceback."""
    torch.manual_seed(0)
    kwargs = dict(in_channels=1, out_channels=1, depth=2, base_channels=2, padding_mode="circular")
    net = UNet3D(**kwargs)
    path = str(tmp_path / "unet3d.pt")
    model_file.save_model(path, net, "unet3d", kwargs, _patterson_config(pad_multiple("unet3d", kwargs)))
    bundle = model_file.load_bundle(path, task="patterson_to_density")
    assert isinstance(bundle.task, tasks.PattersonToDensity) and bundle.task.pad_multiple == 4

    f_obs = _dialanine_amplitudes((9.5, 9.0, 9.8, 90, 90, 90))
    patterson, _, _ = bundle.task.network_input(f_obs)
    assert patterson.shape == (20, 18, 20)
    with pytest.raises(ValueError, match="divisible by 4"):  # the bare network refuses this grid
        net(torch.from_numpy(patterson)[None, None])
    r = density_prediction.predict(bundle, f_obs, rotations=2)
    assert r["network_density"].shape == (20, 18, 20) and np.isfinite(r["network_density"]).all()
    # the same numbers as the training path: Task.forward on a batch padded and cropped
    batch = {"x": torch.from_numpy(patterson)[None, None], "y": torch.zeros(1, 1, 20, 18, 20)}
    with torch.no_grad():
        trained_way = bundle.task.forward(bundle.network, batch)[0, 0].numpy()
    np.testing.assert_allclose(bundle.task.predict_maps(bundle.network, patterson[None])[0], trained_way, atol=1e-6)


def test_the_model_file_restores_task_config_and_provenance(tmp_path):
    kwargs = dict(in_channels=1, out_channels=1, depth=1, base_channels=2)
    path = str(tmp_path / "m.pt")
    model_file.save_model(path, UNet3D(**kwargs), "unet3d", kwargs, _patterson_config(2), "train { epochs = 1 }")
    bundle = model_file.load_bundle(path)
    assert bundle.config == model_file.ModelConfig("patterson_to_density", "unet3d", kwargs, _patterson_config(2))
    assert bundle.task.config == _patterson_config(2)
    assert bundle.provenance["training_phil"] == "train { epochs = 1 }" and "versions" in bundle.provenance
    assert bundle.info["path"] == bundle.path and "state_dict" not in bundle.info
    with pytest.raises(Sorry, match="not 'extend_resolution'"):
        model_file.load_bundle(path, task="extend_resolution")


def test_shipped_registry_serves_every_program():
    for name, path in model_file.shipped_models().items():
        task = model_file.SHIPPED[name][1]
        assert model_file.resolve(name, task) == path
    assert set(model_file.shipped_models("extend_resolution")) == {"extend_1.2_to_1.0A", "extend_1.5_to_0.8A"}
    assert model_file.default_model("patterson_to_density").endswith("patterson_dialanine_10A.pt")
    assert model_file.default_model("extend_resolution", d_min_data=1.5).endswith("extend_1.5_to_0.8A.pt")


@pytest.mark.parametrize("name", tasks.TASKS)
def test_each_task_declares_what_it_reads_and_its_default_network(name):
    cls = tasks.task_class(name)
    assert cls.default_architecture in ARCHITECTURES
    with pytest.raises(Sorry, match=f"task={name} needs simulate outputs"):
        cls.check_dataset({"outputs": []}, "somewhere")
    outputs = sorted({tasks.base.SIMULATE_OUTPUT[f] for f in cls.dataset_fields()})
    cls.check_dataset({"outputs": outputs}, "somewhere")  # complete: no Sorry


def test_unknown_task_is_a_sorry():
    with pytest.raises(Sorry, match="Unknown task"):
        tasks.task_class("phase_retrieval")


def test_imposing_the_observed_amplitudes_keeps_phases_and_takes_amplitudes_from_the_patterson():
    """Recycling (issue 11): the next estimate has the current estimate's phases and the
    amplitudes of the network's input, |F| = sqrt(FT(Patterson)). Imposed on the true
    density, it gives the true density back (scaled to [-1, 1])."""
    from ml_phasing.tasks.maps import impose_amplitudes

    rng = np.random.default_rng(0)
    density = torch.from_numpy(rng.standard_normal((1, 1, 12, 10, 14)))
    density -= density.mean()
    f = torch.fft.rfftn(density, dim=(2, 3, 4))
    patterson = torch.fft.irfftn(f.abs() ** 2, s=density.shape[2:], dim=(2, 3, 4))
    patterson = patterson / patterson.abs().max()
    back = impose_amplitudes(density, patterson)
    np.testing.assert_allclose(back.numpy(), (density / density.abs().max()).numpy(), atol=1e-5)
    other = torch.from_numpy(rng.standard_normal(density.shape))
    imposed = torch.fft.rfftn(impose_amplitudes(other, patterson).double(), dim=(2, 3, 4))
    ratio = imposed.abs() / f.abs().clamp(min=1e-9)
    assert float(ratio[f.abs() > 1].std() / ratio[f.abs() > 1].mean()) < 1e-4  # |F| of the data, one scale
    phase_diff = torch.angle(imposed * torch.conj(torch.fft.rfftn(other, dim=(2, 3, 4))))
    assert float(phase_diff[f.abs() > 1].abs().max()) < 1e-4  # the estimate's phases


def test_a_model_widened_for_recycling_starts_as_the_old_one(tmp_path):
    """Fine-tuning a model trained without recycling with recycling_passes=3: the new input
    channel starts at zero, so every pass returns the old model's prediction."""
    from ml_phasing.models import PattersonResNet
    from ml_phasing.training.loop import load_widened

    torch.manual_seed(1)
    kwargs = dict(in_channels=1, out_channels=1, stem_channels=3, channels=4, n_blocks=1)
    old = PattersonResNet(**kwargs).eval()
    new = PattersonResNet(**dict(kwargs, in_channels=2)).eval()
    load_widened(new, old.state_dict())
    grid = np.random.default_rng(2).standard_normal((2, 20, 20, 20)).astype(np.float32)
    plain = tasks.PattersonToDensity(_patterson_config(2))
    recycled = tasks.PattersonToDensity(dict(_patterson_config(2), recycling_passes=3, in_channels=2))
    np.testing.assert_allclose(recycled.predict_maps(new, grid), plain.predict_maps(old, grid), atol=1e-6)
    with pytest.raises(Sorry, match="does not fit"):
        load_widened(old, new.state_dict())


def test_per_pass_batch_norm_statistics_reproduce_batch_statistics_in_evaluation():
    """A recycling network's inputs differ from pass to pass, so each pass keeps its own
    batch-norm statistics (PassBatchNorm3d). Calibrated on a batch, evaluation mode gives what
    training mode (that batch's own statistics at every pass) gives; one shared set does not.
    A state dict from before per-pass statistics loads, every pass starting from its one set."""
    from ml_phasing.models import PattersonResNet
    from ml_phasing.training.loop import calibrate_pass_statistics

    torch.manual_seed(3)
    kwargs = dict(in_channels=2, out_channels=1, stem_channels=3, channels=4, n_blocks=1, norm_passes=3)
    net = PattersonResNet(**kwargs)
    task = tasks.PattersonToDensity(dict(_patterson_config(2), recycling_passes=3, in_channels=2))
    x = torch.from_numpy(np.random.default_rng(4).standard_normal((6, 1, 20, 20, 20)).astype(np.float32))
    with torch.no_grad():
        net.train()
        for _ in range(3):  # give the second input channel weight, as training does
            net.encoder[0][0].weight[:, 1] = 0.5
        batch_stats = task.apply_passes(net, x, 3)
        calibrate_pass_statistics(net, task, [x])
        assert not net.training
        calibrated = float((task.apply_passes(net, x, 3) - batch_stats).abs().max())
        assert calibrated < 0.02, calibrated  # unbiased running variance against the biased one
        shared = PattersonResNet(**dict(kwargs, norm_passes=1))
        shared_state = {k: v for k, v in net.state_dict().items() if "pass_running" not in k}
        shared.load_state_dict(shared_state)
        shared.eval()
        one_set = float((task.apply_passes(shared, x, 3) - batch_stats).abs().max())
        assert one_set > 10 * calibrated
        fresh = PattersonResNet(**kwargs)
        fresh.load_state_dict(shared_state)  # no per-pass statistics in it
        bn = fresh.encoder[0][1]
        for p in range(3):
            assert torch.equal(bn.pass_running_mean[p], bn.running_mean)


def test_a_recycling_model_fine_tuned_with_more_passes_starts_as_the_old_one():
    """Fine-tuning a 3-pass model with recycling_passes=6 (phil/dipeptide_12A_v3_train.eff):
    passes 4-6 get pass 3's batch-norm statistics, so the 6-pass network runs exactly as the
    old one did at inference (passes beyond the trained ones used the last pass's statistics);
    loading the 6-pass state into a 3-pass network keeps the first three passes."""
    from ml_phasing.models import PattersonResNet
    from ml_phasing.training.loop import load_widened

    torch.manual_seed(5)
    kwargs = dict(in_channels=2, out_channels=1, stem_channels=3, channels=4, n_blocks=1)
    old = PattersonResNet(**kwargs, norm_passes=3)
    bn = old.encoder[0][1]
    with torch.no_grad():
        bn.pass_running_mean.copy_(torch.randn_like(bn.pass_running_mean))
        bn.pass_running_var.uniform_(0.5, 2.0)
    old.eval()
    new = PattersonResNet(**kwargs, norm_passes=6).eval()
    load_widened(new, old.state_dict())
    grown = new.encoder[0][1]
    assert torch.equal(grown.pass_running_mean[:3], bn.pass_running_mean)
    for p in range(3, 6):
        assert torch.equal(grown.pass_running_var[p], bn.pass_running_var[2])
    grid = np.random.default_rng(6).standard_normal((2, 20, 20, 20)).astype(np.float32)
    config = dict(_patterson_config(2), in_channels=2)
    three = tasks.PattersonToDensity(dict(config, recycling_passes=3))
    six = tasks.PattersonToDensity(dict(config, recycling_passes=6))
    before = three.predict_maps(old, grid, passes=6)
    np.testing.assert_allclose(six.predict_maps(new, grid, passes=6), before, atol=1e-6)
    back = PattersonResNet(**kwargs, norm_passes=3).eval()
    back.load_state_dict(new.state_dict())
    assert torch.equal(back.encoder[0][1].pass_running_mean, bn.pass_running_mean)
