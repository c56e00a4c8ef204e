"""Pan et al.'s residual network from Patterson maps to density (IUCrJ 2023).

Encoding convolutions with circular padding, one 2x max-pool, residual blocks
with squeeze-excitation, nearest-neighbour upsampling, decoding convolutions and
a tanh output (maps are scaled to [-1, 1]). Kernel sizes 7 (encoder and residual
blocks) and 5 (decoder), 25/30 channels and 8 blocks in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from ml_phasing.models.blocks import ConvNormAct, check_grid, norm3d, output_activation


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x):
        w = self.fc(x.mean(dim=(2, 3, 4)))
        return x * w[:, :, None, None, None]


class ResSEBlock(nn.Module):
    def __init__(self, channels: int, kernel_size: int, norm: str, se_reduction: int, norm_passes: int = 1):
        super().__init__()
        self.conv1 = ConvNormAct(channels, channels, kernel_size, norm, "circular", norm_passes=norm_passes)
        self.conv2 = nn.Sequential(
            nn.Conv3d(
                channels, channels, kernel_size, padding=kernel_size // 2, padding_mode="circular", bias=norm == "none"
            ),
            norm3d(norm, channels, norm_passes),
        )
        self.se = SqueezeExcitation(channels, se_reduction)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(x + self.se(self.conv2(self.conv1(x))))


class PattersonResNet(nn.Module):
    """Residual 3D CNN with squeeze-excitation (Pan et al. 2023).

    Args:
        in_channels: 1 (the Patterson), more for partial-structure channels.
        out_channels: 1 (the density).
        stem_channels: channels of the first full-resolution convolution (paper 25).
        channels: channels of the residual trunk at half resolution (paper 30).
        n_blocks: residual blocks (paper 8).
        kernel_size: encoder and trunk kernel (paper 7).
        decoder_kernel_size: decoder kernel (paper 5).
        se_reduction: squeeze-excitation reduction (paper 2).
        norm: "batch", "instance" or "none".
        out_activation: "tanh" (paper) or "none".
        norm_passes: recycling passes with their own batch-norm statistics
            (:class:`~ml_phasing.models.blocks.PassBatchNorm3d`); 1 without recycling.

    Shape: (batch, in_channels, nx, ny, nz) -> (batch, out_channels, nx, ny, nz); each n even.
    All convolutions use circular padding: the maps are periodic.

    Examples::

        >>> net = PattersonResNet(stem_channels=4, channels=6, n_blocks=1, kernel_size=3,
        ...                       decoder_kernel_size=3)
        >>> net(torch.zeros(1, 1, 10, 10, 10)).shape
        torch.Size([1, 1, 10, 10, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        stem_channels: int = 25,
        channels: int = 30,
        n_blocks: int = 8,
        kernel_size: int = 7,
        decoder_kernel_size: int = 5,
        se_reduction: int = 2,
        norm: str = "batch",
        out_activation: str = "tanh",
        norm_passes: int = 1,
    ):
        super().__init__()
        self.encoder = nn.Sequential(
            ConvNormAct(in_channels, stem_channels, kernel_size, norm, "circular", norm_passes=norm_passes),
            ConvNormAct(stem_channels, channels, kernel_size, norm, "circular", norm_passes=norm_passes),
            nn.MaxPool3d(2),
        )
        self.trunk = nn.Sequential(
            *[ResSEBlock(channels, kernel_size, norm, se_reduction, norm_passes) for _ in range(n_blocks)]
        )
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvNormAct(channels, stem_channels, decoder_kernel_size, norm, "circular", norm_passes=norm_passes),
            nn.Conv3d(
                stem_channels,
                out_channels,
                decoder_kernel_size,
                padding=decoder_kernel_size // 2,
                padding_mode="circular",
            ),
        )
        self.act = output_activation(out_activation)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_grid(x, 2, "PattersonResNet")
        return self.act(self.decoder(self.trunk(self.encoder(x))))
