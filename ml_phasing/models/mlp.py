"""Multilayer perceptron on flattened grids (the Scripps MLPRegressor equivalent)."""

from __future__ import annotations

import math

import torch
from torch import nn


class MLP(nn.Module):
    """Flattened grid in, grid out, ReLU hidden layers.

    Args:
        in_shape: input grid (channels, nx, ny, nz) or (nx, ny, nz).
        out_shape: output grid (channels, nx, ny, nz) or (nx, ny, nz).
        hidden: sizes of the hidden layers (scikit-learn's hidden_layer_sizes).
        dropout: dropout after each hidden layer.

    Shape: (batch, *in_shape) -> (batch, *out_shape).

    Examples::

        >>> MLP(in_shape=(1, 3, 3, 3), out_shape=(1, 4, 4, 4), hidden=(8,))(torch.zeros(2, 1, 3, 3, 3)).shape
        torch.Size([2, 1, 4, 4, 4])
    """

    def __init__(
        self,
        in_shape: tuple = (1, 9, 9, 9),
        out_shape: tuple = (1, 16, 16, 16),
        hidden: tuple = (512, 512),
        dropout: float = 0.0,
    ):
        super().__init__()
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        sizes = [math.prod(self.in_shape), *hidden]
        layers = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
            if dropout:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(sizes[-1], math.prod(self.out_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"MLP expects (batch, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")
        return self.net(x.flatten(1)).view(x.shape[0], *self.out_shape)
