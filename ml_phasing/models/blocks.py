"""Small building blocks shared by the 3D networks."""

from __future__ import annotations

import torch
from torch import nn


class PassBatchNorm3d(nn.BatchNorm3d):
    """Batch normalisation with running statistics for each recycling pass.

    A recycling network sees different inputs on each pass (a zero estimate first, then
    better ones), so one set of running statistics fits none of them: in evaluation such a
    model read an MSE 3.5 times the one it reached with batch statistics (the dialanine
    recycling model, 96 held-out examples). Here pass ``pass_index`` trains and uses its own
    mean and variance (as Cooijmans et al. 2017, recurrent batch normalisation, keep one set
    per time step); the affine weights are shared. :func:`set_recycling_pass` sets the pass.
    A state dict without per-pass statistics (a model trained before them) fills every
    pass with its one set; one with fewer passes (a model fine-tuned with more recycling
    passes than it was trained with) fills the new passes with its last pass's statistics,
    and one with more keeps its first ``passes``.

    Examples::

        >>> bn = PassBatchNorm3d(2, passes=3)
        >>> bn.pass_running_mean.shape
        torch.Size([3, 2])
    """

    def __init__(self, channels: int, passes: int):
        super().__init__(channels)
        self.passes = int(passes)
        self.register_buffer("pass_running_mean", torch.zeros(self.passes, channels))
        self.register_buffer("pass_running_var", torch.ones(self.passes, channels))
        self.pass_index = 0

    def forward(self, x):
        i = min(self.pass_index, self.passes - 1)
        return nn.functional.batch_norm(
            x,
            self.pass_running_mean[i],
            self.pass_running_var[i],
            self.weight,
            self.bias,
            self.training,
            self.momentum if self.momentum is not None else 0.1,
            self.eps,
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name, shared in (("pass_running_mean", "running_mean"), ("pass_running_var", "running_var")):
            if prefix + name not in state_dict and prefix + shared in state_dict:
                state_dict[prefix + name] = state_dict[prefix + shared].unsqueeze(0).repeat(self.passes, 1)
            stored = state_dict.get(prefix + name)
            if stored is not None and stored.dim() == 2 and stored.shape[0] != self.passes:
                more = stored[-1:].repeat(max(0, self.passes - stored.shape[0]), 1)
                state_dict[prefix + name] = torch.cat([stored[: self.passes], more], 0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def set_recycling_pass(model: nn.Module, index: int) -> None:
    """Make every :class:`PassBatchNorm3d` of ``model`` use pass ``index`` (0 = first)."""
    for module in model.modules():
        if isinstance(module, PassBatchNorm3d):
            module.pass_index = index


def norm3d(kind: str, channels: int, passes: int = 1) -> nn.Module:
    if kind == "batch":
        return PassBatchNorm3d(channels, passes) if passes > 1 else nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalisation {kind!r}")


class ConvNormAct(nn.Sequential):
    """Conv3d (same padding) + normalisation + activation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel_size: int = 3,
        norm: str = "batch",
        padding_mode: str = "zeros",
        activation: bool = True,
        norm_passes: int = 1,
    ):
        layers = [
            nn.Conv3d(cin, cout, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode, bias=norm == "none")
        ]
        layers.append(norm3d(norm, cout, norm_passes))
        if activation:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str = "batch", padding_mode: str = "zeros", kernel_size: int = 3):
        super().__init__(
            ConvNormAct(cin, cout, kernel_size, norm, padding_mode),
            ConvNormAct(cout, cout, kernel_size, norm, padding_mode),
        )


def output_activation(name: str) -> nn.Module:
    return {"none": nn.Identity(), "tanh": nn.Tanh(), "relu": nn.ReLU(), "softplus": nn.Softplus()}[name]


def check_grid(x: torch.Tensor, multiple: int, name: str) -> None:
    """Shape contract of the 3D networks: (batch, channels, nx, ny, nz), each n divisible."""
    if x.dim() != 5:
        raise ValueError(f"{name} expects (batch, channels, nx, ny, nz), got shape {tuple(x.shape)}")
    bad = [n for n in x.shape[2:] if n % multiple]
    if bad:
        raise ValueError(
            f"{name}: grid {tuple(x.shape[2:])} must be divisible by {multiple} "
            "(2**depth); choose another grid or depth"
        )


class UNetBody(nn.Module):
    """The U-Net skeleton shared by UNet3D and FFTUNet3D: levels built from ``block(cin, cout)``.

    Encoder: block at each level with 2x max-pooling between levels; decoder:
    transposed-convolution upsampling, concatenation with the skip, block.
    """

    def __init__(self, block, in_channels: int, depth: int, base_channels: int):
        super().__init__()
        self.depth = depth
        ch = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([block(in_channels, ch[0])])
        for i in range(depth):
            self.down.append(block(ch[i], ch[i + 1]))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(depth)):
            self.up.append(nn.ConvTranspose3d(ch[i + 1], ch[i], 2, stride=2))
            self.dec.append(block(2 * ch[i], ch[i]))
        self.out_channels = ch[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool3d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return x
