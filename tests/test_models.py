"""Every network: forward and backward on small odd sizes, shape contracts, state round trips."""

import io

import pytest
import torch

from ml_phasing.models import FFTUNet3D, MLP, PattersonResNet, UNet3D, XRDTransformer

torch.manual_seed(0)

GRID_MODELS = [
    ("unet3d", lambda: UNet3D(in_channels=2, out_channels=1, depth=1, base_channels=3), (2, 2, 6, 10, 14)),
    (
        "unet3d_circular",
        lambda: UNet3D(depth=2, base_channels=2, padding_mode="circular", norm="instance", out_activation="tanh"),
        (1, 1, 12, 8, 4),
    ),
    ("unet3d_out_shape", lambda: UNet3D(depth=1, base_channels=2, out_shape=(7, 9, 5)), (2, 1, 6, 6, 6)),
    (
        "patterson",
        lambda: PattersonResNet(stem_channels=3, channels=5, n_blocks=2, kernel_size=3, decoder_kernel_size=3),
        (2, 1, 6, 10, 14),
    ),
    ("fft_unet", lambda: FFTUNet3D(in_channels=4, depth=1, base_channels=3), (2, 4, 6, 10, 14)),
    ("mlp", lambda: MLP(in_shape=(1, 3, 5, 7), out_shape=(1, 5, 3, 3), hidden=(11,)), (3, 1, 3, 5, 7)),
]


@pytest.mark.parametrize("name, make, shape", GRID_MODELS, ids=[g[0] for g in GRID_MODELS])
def test_forward_backward_and_state_round_trip(name, make, shape):
    net = make()
    x = torch.randn(*shape)
    y = net(x)
    assert y.shape[0] == shape[0] and torch.all(torch.isfinite(y))
    y.square().mean().backward()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.all(torch.isfinite(g)) for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)
    # state_dict round trip gives the same outputs in eval mode
    net.eval()
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    buf.seek(0)
    twin = make()
    twin.load_state_dict(torch.load(buf, weights_only=True))
    twin.eval()
    with torch.no_grad():
        assert torch.equal(net(x), twin(x))


def test_shape_contracts_are_clear():
    with pytest.raises(ValueError, match="divisible by 4"):
        UNet3D(depth=2, base_channels=2)(torch.zeros(1, 1, 6, 8, 8))
    with pytest.raises(ValueError, match="divisible by 2"):
        PattersonResNet(stem_channels=2, channels=2, n_blocks=1, kernel_size=3, decoder_kernel_size=3)(
            torch.zeros(1, 1, 5, 6, 6)
        )
    with pytest.raises(ValueError, match=r"\(batch, channels, nx, ny, nz\)"):
        FFTUNet3D(depth=1, base_channels=2)(torch.zeros(1, 6, 6, 6))
    with pytest.raises(ValueError, match="MLP expects"):
        MLP(in_shape=(1, 3, 3, 3), out_shape=(1, 3, 3, 3), hidden=(4,))(torch.zeros(2, 1, 4, 3, 3))
    net = XRDTransformer(dim=8, depth=1, heads=2, max_index=3)
    z = torch.zeros(1, 4)
    with pytest.raises(ValueError, match="beyond max_index"):
        net(torch.full((1, 4, 3), 5, dtype=torch.long), z, z.bool(), z, torch.ones(1, 6), z.bool())


def test_patterson_net_is_periodic():
    """Circular padding: translating the input translates the output (before pooling effects)."""
    net = PattersonResNet(
        stem_channels=3, channels=4, n_blocks=1, kernel_size=3, decoder_kernel_size=3, norm="none"
    ).eval()
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.no_grad():
        a = torch.roll(net(x), shifts=(2, 4, 6), dims=(2, 3, 4))
        b = net(torch.roll(x, shifts=(2, 4, 6), dims=(2, 3, 4)))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # even shifts commute with the 2x pool


def test_transformer_forward_backward_padding():
    net = XRDTransformer(dim=12, depth=2, heads=3, max_index=6)
    idx = torch.randint(-6, 7, (2, 9, 3))
    values = torch.rand(2, 9)
    measured = torch.rand(2, 9) > 0.5
    padding = torch.zeros(2, 9, dtype=torch.bool)
    padding[1, 6:] = True
    cell = torch.tensor([[10.0, 11, 12, 90, 100, 90], [8.0, 9, 10, 90, 90, 90]])
    y = net(idx, values, measured, torch.rand(2, 9), cell, padding)
    assert y.shape == (2, 9) and torch.all(y >= 0)
    y[~padding].sum().backward()
    assert net.index_embedding[0].weight.grad is not None
    # Padding tokens do not change the real tokens' outputs.
    net.eval()
    with torch.no_grad():
        full = net(idx, values, measured, torch.rand(2, 9) * 0 + 0.1, cell, padding)
        idx2 = idx.clone()
        idx2[1, 6:] = 0
        other = net(idx2, values, measured, torch.rand(2, 9) * 0 + 0.1, cell, padding)
    torch.testing.assert_close(full[1, :6], other[1, :6])
    # The cell matters: same hkl, different cell, different prediction.
    with torch.no_grad():
        a = net(idx[:1], values[:1], measured[:1], torch.full((1, 9), 0.1), cell[:1], padding[:1])
        b = net(idx[:1], values[:1], measured[:1], torch.full((1, 9), 0.1), cell[1:], padding[:1])
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("module", ["unet3d", "patterson_unet", "mlp", "fft_unet", "xrd_transformer"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"ml_phasing.models.{module}")
    result = doctest.testmod(mod, extraglobs={"torch": torch})
    assert result.attempted > 0 and result.failed == 0
