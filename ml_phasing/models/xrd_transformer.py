"""Transformer over reflections (Khaibrakhmanov thesis, XRDTransformer), cell-aware.

Each reflection is a token embedding its h, k and l (a learned vector per index
value, i.e. a linear map of the one-hot index, as in the thesis), its measured
amplitude and a measured flag, and, unlike the thesis, its 1/d^2 and the unit
cell, so the same hkl in different cells is not confused. Full self-attention
over the reflections of one crystal; the head predicts the amplitude of every
token (non-negative).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class XRDTransformer(nn.Module):
    """Args:
        dim: token width (thesis 128).
        depth: encoder layers (thesis 5).
        heads: attention heads (thesis 4).
        mlp_ratio: feed-forward width / dim (thesis 4).
        dropout: dropout (thesis 0.1).
        max_index: largest |h|, |k|, |l| the index embeddings cover.

    Forward (all batch-first, L = reflections, padded):
        indices (B, L, 3) long; values (B, L) measured amplitude (0 if not measured);
        measured (B, L) bool; inv_d_sq (B, L); cell (B, 6) a, b, c (A) and alpha, beta, gamma
        (degrees); padding (B, L) bool, True for padding tokens.
        Returns (B, L) predicted amplitudes.

    Examples::

        >>> net = XRDTransformer(dim=12, depth=1, heads=2, max_index=4)
        >>> idx = torch.zeros(2, 5, 3, dtype=torch.long)
        >>> z = torch.zeros(2, 5)
        >>> net(idx, z, z.bool(), z, torch.ones(2, 6), z.bool()).shape
        torch.Size([2, 5])
    """

    def __init__(
        self,
        dim: int = 128,
        depth: int = 5,
        heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        max_index: int = 32,
    ):
        super().__init__()
        self.max_index = max_index
        self.index_embedding = nn.ModuleList([nn.Embedding(2 * max_index + 1, dim) for _ in range(3)])
        self.value_embedding = nn.Linear(3, dim)
        self.cell_embedding = nn.Linear(6, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, int(dim * mlp_ratio), dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def forward(self, indices, values, measured, inv_d_sq, cell, padding):
        if indices.dim() != 3 or indices.shape[-1] != 3:
            raise ValueError(f"XRDTransformer expects indices (batch, L, 3), got {tuple(indices.shape)}")
        if indices.abs().max() > self.max_index:
            raise ValueError(f"Miller index {int(indices.abs().max())} beyond max_index={self.max_index}")
        idx = indices + self.max_index
        tok = sum(emb(idx[..., i]) for i, emb in enumerate(self.index_embedding))
        feats = torch.stack([values, measured.to(values.dtype), inv_d_sq], dim=-1)
        tok = tok + self.value_embedding(feats)
        cell_feats = torch.cat([cell[:, :3] / 20.0, torch.cos(torch.deg2rad(cell[:, 3:]))], dim=-1)
        tok = tok + self.cell_embedding(cell_feats)[:, None, :]
        out = self.encoder(tok, src_key_padding_mask=padding)
        return F.softplus(self.head(out).squeeze(-1))
