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

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, norm: str = "batch",
                 padding_mode: str = "zeros", activation: bool = True):
        layers = [nn.Conv3d(cin, cout, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode,
                            bias=norm == "none")]
        layers.append(norm3d(norm, cout))
        if activation:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str = "batch", padding_mode: str = "zeros",
                 kernel_size: int = 3):
        super().__init__(ConvNormAct(cin, cout, kernel_size, norm, padding_mode),
                         ConvNormAct(cout, cout, kernel_size, norm, padding_mode))


def output_activation(name: str) -> nn.Module:
    return {"none": nn.Identity(), "tanh": nn.Tanh(), "relu": nn.ReLU(), "softplus": nn.Softplus()}[name]


def check_grid(x: torch.Tensor, multiple: int, name: str) -> None:
    """Shape contract of the 3D networks: (batch, channels, nx, ny, nz), each n divisible."""
    if x.dim() != 5:
        raise ValueError(f"{name} expects (batch, channels, nx, ny, nz), got shape {tuple(x.shape)}")
    bad = [n for n in x.shape[2:] if n % multiple]
    if bad:
        raise ValueError(f"{name}: grid {tuple(x.shape[2:])} must be divisible by {multiple} "
                         "(2**depth); choose another grid or depth")
