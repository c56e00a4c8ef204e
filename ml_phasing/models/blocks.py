"""Small building blocks shared by the 3D networks."""

from __future__ import annotations

import torch
from torch import nn


def norm3d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
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
    ):
        layers = [
            nn.Conv3d(cin, cout, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode, bias=norm == "none")
        ]
        layers.append(norm3d(norm, cout))
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
