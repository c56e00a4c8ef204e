"""3D U-Net (Cicek et al., MICCAI 2016), as used by the Scripps diffraction-to-density work."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ml_phasing.models.blocks import DoubleConv, UNetBody, check_grid, output_activation


class UNet3D(nn.Module):
    """Encoder-decoder with skip connections.

    Args:
        in_channels: input channels (default 1).
        out_channels: output channels (default 1).
        depth: number of 2x down-sampling steps (default 2); grids must be divisible by 2**depth.
        base_channels: channels of the first level, doubled at each level (default 16).
        norm: "batch", "instance" or "none".
        padding_mode: "zeros", or "circular" for periodic maps.
        out_activation: "none", "tanh", "relu" or "softplus".
        out_shape: if set, the output is resampled (trilinear) to this grid, e.g. when a
            |F|^2 grid on hkl maps to a voxel grid of another size.

    Shape: (batch, in_channels, nx, ny, nz) -> (batch, out_channels, nx, ny, nz) or out_shape.

    Examples::

        >>> net = UNet3D(depth=2, base_channels=4)
        >>> net(torch.zeros(2, 1, 8, 12, 16)).shape
        torch.Size([2, 1, 8, 12, 16])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 2,
        base_channels: int = 16,
        norm: str = "batch",
        padding_mode: str = "zeros",
        out_activation: str = "none",
        out_shape: tuple | None = None,
    ):
        super().__init__()
        self.depth = depth
        self.out_shape = tuple(out_shape) if out_shape else None
        self.body = UNetBody(
            lambda cin, cout: DoubleConv(cin, cout, norm, padding_mode), in_channels, depth, base_channels
        )
        self.head = nn.Conv3d(self.body.out_channels, out_channels, 1)
        self.act = output_activation(out_activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, 2**self.depth, "UNet3D")
        x = self.head(self.body(x))
        if self.out_shape and tuple(x.shape[2:]) != self.out_shape:
            x = F.interpolate(x, size=self.out_shape, mode="trilinear", align_corners=False)
        return self.act(x)
