"""U-Net whose blocks add a branch through the Fourier transform (Khaibrakhmanov thesis).

Each level's block returns x + DoubleConv(x) + F^-1(Conv1x1(F(x))). Unlike the
thesis code, which convolves only |F(x)| and so discards the phases of the
features, the 1x1 convolutions here act on the real and imaginary parts
(a spectral, global-receptive-field mixing as in Fast Fourier Convolutions).
"""

from __future__ import annotations

import torch
from torch import nn

from ml_phasing.models.blocks import DoubleConv, UNetBody, check_grid, output_activation


class FourierBranch(nn.Module):
    def __init__(self, channels: int, layers: int = 2):
        super().__init__()
        mods = []
        for i in range(layers):
            mods.append(nn.Conv3d(2 * channels, 2 * channels, 1))
            if i < layers - 1:
                mods.append(nn.GELU())
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        shape = x.shape[2:]
        z = torch.fft.rfftn(x.float(), dim=(2, 3, 4), norm="ortho")
        y = self.net(torch.cat([z.real, z.imag], dim=1))
        re, im = y.chunk(2, dim=1)
        return torch.fft.irfftn(torch.complex(re, im), s=shape, dim=(2, 3, 4), norm="ortho").to(x.dtype)


class ResFBlock(nn.Module):
    def __init__(self, cin: int, cout: int, norm: str, fft_layers: int):
        super().__init__()
        self.proj = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()
        self.conv = DoubleConv(cout, cout, norm)
        self.fourier = FourierBranch(cout, fft_layers)

    def forward(self, x):
        x = self.proj(x)
        return x + self.conv(x) + self.fourier(x)


class FFTUNet3D(nn.Module):
    """U-Net with Fourier residual blocks.

    Args:
        in_channels, out_channels: channels in and out.
        depth: 2x down-sampling steps; grids must be divisible by 2**depth.
        base_channels: channels of the first level, doubled per level.
        fft_layers: 1x1 convolutions in each Fourier branch (thesis 2).
        norm: "instance" (thesis), "batch" or "none".
        out_activation: "softplus" (amplitudes are non-negative; a ReLU output can die
            and predict 0 everywhere, which it did in a 25-minute run), "relu", "none", ...

    Shape: (batch, in_channels, nx, ny, nz) -> (batch, out_channels, nx, ny, nz).

    Examples::

        >>> FFTUNet3D(in_channels=2, depth=1, base_channels=4)(torch.zeros(1, 2, 6, 4, 8)).shape
        torch.Size([1, 1, 6, 4, 8])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 2,
        base_channels: int = 16,
        fft_layers: int = 2,
        norm: str = "instance",
        out_activation: str = "softplus",
    ):
        super().__init__()
        self.depth = depth
        self.body = UNetBody(
            lambda cin, cout: ResFBlock(cin, cout, norm, fft_layers), in_channels, depth, base_channels
        )
        self.head = nn.Conv3d(self.body.out_channels, out_channels, 1)
        self.act = output_activation(out_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, 2**self.depth, "FFTUNet3D")
        return self.act(self.head(self.body(x)))
