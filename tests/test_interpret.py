"""ml_phasing.interpret: Grad-CAM and attention maps on cases whose answer is known, and the
program end to end with the shipped models."""

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from conftest import assert_clean_exit, run_script
from ml_phasing.prediction import interpretation as interp

N = 24
RELEVANT = (slice(2, 10),) * 3  # +1 blob: the only thing the output depends on
DECOY = (slice(14, 22),) * 3  # -1 blob of the same size and strength: seen by the layer, ignored by the head


class TwoFeatureNet(nn.Module):
    """block: channel 0 = relu(x) (positive features), channel 1 = relu(-x) (negative
    features); head: output = channel 0 only. So the output depends on the positive blob
    alone, while the layer's activations are as strong on the negative one."""

    def __init__(self, pool: bool):
        super().__init__()
        conv = nn.Conv3d(1, 2, 1, bias=False)
        head = nn.Conv3d(2, 1, 1, bias=False)
        with torch.no_grad():
            conv.weight[:] = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1, 1)
            head.weight[:] = torch.tensor([1.0, 0.0]).view(1, 2, 1, 1, 1)
        self.block = nn.Sequential(conv, nn.ReLU(inplace=True), *([nn.MaxPool3d(2)] if pool else []))
        self.head = nn.Sequential(*([nn.Upsample(scale_factor=2)] if pool else []), head)

    def forward(self, x):
        return self.head(self.block(x))


def two_blob_input():
    x = torch.zeros(1, 1, N, N, N)
    x[(0, 0) + RELEVANT] = 1.0
    x[(0, 0) + DECOY] = -1.0
    return x


def fraction_in(m, region):
    return float(m[region].sum() / m.sum())


@pytest.mark.parametrize("pool", [False, True], ids=["full_resolution", "pooled_and_upsampled"])
@pytest.mark.parametrize("weighting", ["channel", "elementwise"])
def test_grad_cam_concentrates_on_the_region_the_output_depends_on(pool, weighting):
    net = TwoFeatureNet(pool).eval()
    x = two_blob_input()
    assert "block" in interp.conv_layer_names(net) and "head" in interp.conv_layer_names(net)
    r = interp.grad_cam(net, "block", lambda: net(x), interp.region_target("whole"), periodic=True, weighting=weighting)
    cam = r["cam"]
    assert cam.shape == (N, N, N) and cam.max() == pytest.approx(1.0)
    assert r["layer_shape"] == ((N // 2,) * 3 if pool else (N,) * 3)
    # the layer's activations alone do not tell the blobs apart: as much of their energy is on each
    seen = {}
    net.block.register_forward_hook(lambda m, i, o: seen.setdefault("a", o.detach()))
    net(x)
    energy = interp.upsample(seen["a"][0].abs().sum(0), (N, N, N), True).numpy()
    assert fraction_in(energy, RELEVANT) == pytest.approx(fraction_in(energy, DECOY), abs=0.02)
    # Grad-CAM weights the channel the output uses: (nearly) all of the map is on the relevant blob
    assert fraction_in(cam, RELEVANT) > (0.99 if not pool else 0.8)
    assert fraction_in(cam, DECOY) < 0.01
    # in-place activations are restored after the gradients were taken
    assert net.block[1].inplace


def test_grad_cam_of_the_output_peak_only():
    """Two separated positive blobs; the target is the highest-peak neighbourhood of the output:
    Grad-CAM (elementwise) marks the blob under the peak, not the other one."""
    from cctbx import uctbx

    net = TwoFeatureNet(pool=False).eval()
    x = torch.zeros(1, 1, 16, 16, 16)
    x[0, 0, 2:5, 2:5, 2:5] = 1.0
    x[0, 0, 3, 3, 3] = 2.0  # the highest output point
    x[0, 0, 10:13, 10:13, 10:13] = 1.0
    peak = interp.sphere_around_maximum(uctbx.unit_cell((16, 16, 16, 90, 90, 90)), 2.0)
    mask = peak(net(x))
    assert int(mask.sum()) == 33  # grid points within 2 A of (3,3,3) on a 1 A grid
    r = interp.grad_cam(
        net, "block", lambda: net(x), interp.region_target("highest_peak", peak=peak), weighting="elementwise"
    )
    assert fraction_in(r["cam"], (slice(1, 6),) * 3) > 0.99


def test_layers_of_the_shipped_architectures_and_the_sorry():
    from libtbx.utils import Sorry

    from ml_phasing.models import FFTUNet3D, PattersonResNet, UNet3D, XRDTransformer

    nets = {
        "patterson_unet": (PattersonResNet(stem_channels=2, channels=2, n_blocks=2, kernel_size=3), "trunk.1"),
        "unet3d": (UNet3D(depth=2, base_channels=2), "body.down.2"),
        "fft_unet": (FFTUNet3D(depth=1, base_channels=2), "body.down.1"),
        "xrd_transformer": (XRDTransformer(dim=8, depth=3, heads=2, max_index=4), "encoder.layers.2"),
    }
    for arch, (net, default) in nets.items():
        assert interp.check_layer(net, arch, None) == default
        assert default in interp.layer_names(net, arch)
    names = interp.conv_layer_names(nets["fft_unet"][0])
    assert "body.down.0.fourier" in names and not any(".fourier." in n for n in names)
    with pytest.raises(Sorry, match="choose one of: .*trunk.0"):
        interp.check_layer(nets["patterson_unet"][0], "patterson_unet", "trunk.7")
    net = nets["unet3d"][0].eval()
    x = torch.randn(1, 1, 8, 8, 8)
    r = interp.grad_cam(net, "body.down.2", lambda: net(x), interp.region_target("whole"))
    assert r["cam"].shape == (8, 8, 8) and r["layer_shape"] == (2, 2, 2)


def token_batch(n=6, padded=1):
    idx = torch.tensor([[[0, 0, 1], [0, 1, 0], [3, 0, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0]][:n]])
    measured = torch.tensor([[True, True, True, False, False, False][:n]])
    padding = torch.zeros(1, n, dtype=torch.bool)
    padding[0, n - padded :] = True
    values = torch.where(measured, torch.rand(1, n), torch.zeros(1, n))
    return idx, values, measured, torch.rand(1, n), torch.tensor([[10.0, 10, 10, 90, 90, 90]]), padding


def test_attention_rows_sum_to_one_and_padding_gets_none():
    from ml_phasing.models import XRDTransformer

    torch.manual_seed(0)
    net = XRDTransformer(dim=8, depth=2, heads=2, max_index=4).eval()
    args = token_batch()
    weights = interp.attention_weights(net, args)
    assert len(weights) == 2 and weights[0].shape == (1, 2, 6, 6)
    for w in weights:
        assert np.allclose(w.sum(-1), 1.0, atol=1e-5)
        assert np.all(w[0, :, :5, 5] == 0)  # the padding token receives nothing
    roll = interp.attention_rollout(weights)
    assert np.allclose(roll.sum(-1), 1.0, atol=1e-5) and np.all(roll[0, :5, 5] == 0)


def test_attention_finds_the_token_the_weights_make_dominant():
    """Weights set by hand: every token's embedding is the same vector c except token 2
    (h = 3, its own index embedding); the queries are a constant u and the keys project on
    token 2's normalised embedding n2, so score(i, j) = s (n2 . n_j) / sqrt(d), largest for
    j = 2 (Cauchy-Schwarz: all normalised embeddings have the same length)."""
    from ml_phasing.models import XRDTransformer

    d, mi = 8, 4
    net = XRDTransformer(dim=d, depth=1, heads=1, max_index=mi, dropout=0.0).eval()
    layer = net.encoder.layers[0]
    with torch.no_grad():
        for emb in net.index_embedding:
            emb.weight.zero_()
        net.index_embedding[0].weight[3 + mi, 1] = 5.0
        c = torch.tensor([1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 0.0, 1.0])
        net.value_embedding.weight.zero_()
        net.value_embedding.bias[:] = c
        net.cell_embedding.weight.zero_()
        net.cell_embedding.bias.zero_()
        n2 = layer.norm1(c + 5.0 * torch.eye(d)[1])
        u = torch.ones(d)
        w = layer.self_attn.in_proj_weight
        b = layer.self_attn.in_proj_bias
        w[:d] = 0.0
        b[:d] = u
        w[d : 2 * d] = 20.0 * torch.outer(u, n2) / (u @ u)
        b[d:] = 0.0
    args = token_batch()
    (w,) = interp.attention_weights(net, args)
    a = w[0].mean(0)
    assert np.all(a[:5, 2] > 0.9)
    measured = np.array([True, True, True, False, False, False])
    predicted = np.array([False, False, False, True, True, False])
    received = interp.received_attention(a, predicted, measured)
    assert int(np.argmax(received)) == 2 and received[2] > 0.9 and received[3:].sum() == 0
    roll = interp.received_attention(interp.attention_rollout([w])[0], predicted, measured)
    assert int(np.argmax(roll)) == 2 and roll[2] > 0.45


# ---------------------------------------------------------------------------- the program
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("interpret")
    assert_clean_exit(
        run_script(
            "ml_phasing.simulate",
            "source=peptides",
            "n_examples=1",
            "write_examples=1",
            "d_min_low=1.5",
            "d_min_high=1.5",
            "random_seed=7",
            "output.directory=example",
            cwd=base,
        )
    )
    shutil.copy(base / "example" / "examples" / "example_00000.mtz", base / "data.mtz")
    return base


def test_patterson_grad_cam_map_on_the_pattersons_grid(data):
    import gemmi
    import iotbx.ccp4_map

    proc = run_script("ml_phasing.interpret", "data.mtz", cwd=data)
    assert_clean_exit(proc)
    for name in ("gradcam.ccp4", "patterson.ccp4", "density.ccp4", "gradcam.png"):
        assert (data / f"data_interp_{name}").stat().st_size > 0
    assert (data / "data_interp_gradcam.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = gemmi.read_ccp4_map(str(data / "data_interp_gradcam.ccp4"))
    m.setup(float("nan"))
    assert (m.grid.nu, m.grid.nv, m.grid.nw) == (20, 20, 20)  # the model's 0.5 A grid on the 10 A cell
    assert m.grid.unit_cell.parameters == pytest.approx((10, 10, 10, 90, 90, 90))
    cam = iotbx.ccp4_map.map_reader(file_name=str(data / "data_interp_gradcam.ccp4"))
    values = cam.map_data().as_numpy_array()
    assert values.shape == (20, 20, 20) and values.min() >= 0 and values.max() == pytest.approx(1.0)
    patterson = iotbx.ccp4_map.map_reader(file_name=str(data / "data_interp_patterson.ccp4"))
    assert patterson.map_data().all() == cam.map_data().all()
    assert patterson.unit_cell().parameters() == cam.unit_cell().parameters()
    assert np.unravel_index(np.argmax(patterson.map_data().as_numpy_array()), (20, 20, 20)) == (0, 0, 0)
    summary = json.loads((data / "data_interp.json").read_text())
    assert summary["method"] == "grad_cam" and summary["layer"] == "trunk.3" and summary["target"] == "peaks"
    assert summary["grid"] == [20, 20, 20]
    assert "Grad-CAM (channel weighting) of trunk.3" in (data / "data_interp.log").read_text()
    # no overwriting without --overwrite; a wrong layer is one Sorry naming the valid ones
    again = run_script("ml_phasing.interpret", "data.mtz", cwd=data)
    assert again.returncode == 1 and "--overwrite" in again.stderr
    wrong = run_script("ml_phasing.interpret", "data.mtz", "layer=trunk.9", "output.prefix=w", cwd=data)
    assert wrong.returncode == 1 and "Sorry: layer=trunk.9" in wrong.stderr and "trunk.3" in wrong.stderr
    assert "Traceback" not in wrong.stderr and not list(data.glob("w*"))


def test_extension_grad_cam_column(data):
    import gemmi

    proc = run_script("ml_phasing.interpret", "data.mtz", "model=extend_1.5_to_0.8A", "output.prefix=ext", cwd=data)
    assert_clean_exit(proc)
    assert (data / "ext_gradcam.png").read_bytes()[:4] == b"\x89PNG"
    mtz = gemmi.read_mtz_file(str(data / "ext.mtz"))
    assert [c.label for c in mtz.columns] == ["H", "K", "L", "F", "SIGF", "F_EXT", "GRADCAM"]
    cam = np.array(mtz.column_with_label("GRADCAM"))
    f = np.array(mtz.column_with_label("F"))
    assert np.nanmax(cam) > 0 and np.nanmin(cam) >= 0
    assert np.isfinite(f).sum() == 618  # every measured reflection, and the rest to 0.8 A
    assert mtz.resolution_high() == pytest.approx(0.8, abs=0.01)


def test_attention_columns_from_a_token_model(data):
    """A small untrained transformer saved as a model file: the program writes the attention
    every measured reflection receives; the per-query attention over measured keys is a
    fraction of one, so the column sums to at most 1."""
    import gemmi

    from ml_phasing.models import XRDTransformer
    from ml_phasing.models.model_file import save_model

    torch.manual_seed(1)
    kwargs = {"dim": 16, "depth": 2, "heads": 2, "max_index": 10, "dropout": 0.0}
    config = {
        "task": "extend_resolution",
        "representation": "tokens",
        "normalisation": "max_measured",
        "d_min_low": 1.5,
        "d_min_high": 1.2,
        "in_channels": 4,
        "out_channels": 1,
        "max_index": 10,
    }
    save_model(str(data / "tiny_tokens.pt"), XRDTransformer(**kwargs), "xrd_transformer", kwargs, config)
    proc = run_script(
        "ml_phasing.interpret",
        "data.mtz",
        "model=tiny_tokens.pt",
        "layer=encoder.layers.0",
        "output.prefix=att",
        cwd=data,
    )
    assert_clean_exit(proc)
    assert (data / "att_attention.png").read_bytes()[:4] == b"\x89PNG"
    mtz = gemmi.read_mtz_file(str(data / "att.mtz"))
    labels = [c.label for c in mtz.columns]
    assert labels == ["H", "K", "L", "F", "SIGF", "F_EXT", "ATTN", "ATTN_ROLL"]
    attn, roll = (np.array(mtz.column_with_label(x)) for x in ("ATTN", "ATTN_ROLL"))
    measured = np.isfinite(np.array(mtz.column_with_label("F")))
    assert np.all(np.isfinite(attn[measured])) and not np.isfinite(attn[~measured]).any()
    assert np.all(attn[measured] > 0) and 0.2 < attn[measured].sum() <= 1.0 + 1e-5
    assert 0 < roll[measured].sum() <= 1.0 + 1e-5
    summary = json.loads((data / "att.json").read_text())
    assert summary["method"] == "attention" and summary["layer"] == "encoder.layers.0"
    wrong = run_script("ml_phasing.interpret", "data.mtz", "model=tiny_tokens.pt", "layer=trunk.3", cwd=data)
    assert wrong.returncode == 1 and "encoder.layers.1" in wrong.stderr


@pytest.fixture(scope="module")
def scripps_unet_cell(tmp_path_factory):
    """A held-out cell of the shipped scripps_unet recipe as an MTZ (conftest.scripps_cell)."""
    from conftest import scripps_cell

    base = tmp_path_factory.mktemp("interp_scripps")
    return (base, *scripps_cell("scripps_unet", base / "cell.mtz"))


def test_intensity_model_grad_cam_column_on_the_cube_reflections(scripps_unet_cell):
    """Issue 15: a convolutional Scripps model's Grad-CAM over its |F|^2 cube input, written per
    reflection of the data (the mean over the reflection and its Friedel mate in the cube)
    beside F in an MTZ, with a PNG of the hkl planes; the MLP has no convolutional layer."""
    from iotbx import mtz

    base, bundle, f, counts, composition = scripps_unet_cell
    proc = run_script("ml_phasing.interpret", "cell.mtz", "model=scripps_unet", f"composition={composition}", cwd=base)
    assert_clean_exit(proc)
    for name in ("cell_interp.mtz", "cell_interp_gradcam.png", "cell_interp.json"):
        assert (base / name).stat().st_size > 0, name
    result = json.loads((base / "cell_interp.json").read_text())
    assert result["method"] == "grad_cam" and result["h_max"] == 7 and result["target"] == "peaks"
    arrays = {a.info().labels[0]: a for a in mtz.object(str(base / "cell_interp.mtz")).as_miller_arrays()}
    cam = arrays["GRADCAM"]
    h = np.abs(np.array(cam.indices())).max(axis=1)
    assert cam.size() == result["n_reflections"] and h.max() <= 7 and cam.size() < f.size()
    values = cam.data().as_numpy_array()
    assert values.min() >= 0 and values.max() <= 1 and values.max() > 0
    # the same numbers as the library's cube: reflection (h,k,l) reads the mean of +-(h,k,l)
    r = interp.intensity_grad_cam(bundle, f, counts, interp.check_layer(bundle.network, "unet3d", None))
    cube = r["cam_cube"]
    for index, value in list(zip(cam.indices(), values))[:50]:
        plus, minus = (tuple(i + 7 for i in index), tuple(7 - i for i in index))
        assert value == pytest.approx((cube[plus] + cube[minus]) / 2, abs=1e-4)
    proc = run_script("ml_phasing.interpret", "cell.mtz", "model=scripps_mlp", "output.prefix=mlp", cwd=base)
    assert_clean_exit(proc, 1)
    assert "Sorry" in proc.stderr and "not for mlp" in proc.stderr
    assert not list(base.glob("mlp*"))


def test_help_examples_parse():
    """Every example in ml_phasing.interpret's help text parses against its PHIL."""
    import shlex

    import iotbx.phil
    from iotbx.cli_parser import CCTBXParser
    from libtbx.utils import null_out

    from ml_phasing.programs.interpret import Program

    master = CCTBXParser(program_class=Program, logger=null_out()).master_phil
    lines = [ln.strip() for ln in Program.description.splitlines() if ln.strip().startswith("ml_phasing.interpret ")]
    assert len(lines) >= 5
    for line in lines:
        for arg in shlex.split(line)[1:]:
            if "=" in arg:
                master.fetch(iotbx.phil.parse(arg))  # raises on an unknown parameter
                assert master.get(arg.split("=")[0]).objects, arg
