"""PNG figures of evaluation results and training histories (matplotlib, Agg backend; files written atomically)."""

from __future__ import annotations

import numpy as np

from ml_phasing.io.atomic_io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _pyplot().close(fig)


def shell_curves(results: list, key: str, ylabel: str, path: str, source: str = "phases") -> bool:
    """One curve per prediction of a per-shell quantity against resolution (1/d^2 axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    drawn = False
    for r in results:
        block = r.get(source)
        if not block or not block.get("shells"):
            continue
        shells = [s for s in block["shells"] if s.get(key) is not None]
        if not shells:
            continue
        x = [1.0 / (0.5 * (s["d_min"] + s["d_max"])) ** 2 for s in shells]
        ax.plot(
            x,
            [s[key] for s in shells],
            marker="o",
            alpha=0.8 if len(results) < 10 else 0.3,
            label=r["prediction"].split("/")[-1] if len(results) < 10 else None,
        )
        drawn = True
    if not drawn:
        plt.close(fig)
        return False
    ticks = ax.get_xticks()
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{1 / np.sqrt(t):.2f}" if t > 0 else "" for t in ticks])
    ax.set_xlabel("resolution (A)")
    ax.set_ylabel(ylabel)
    if len(results) < 10:
        ax.legend(fontsize=7)
    _save(fig, path)
    return True


def map_sections(ref_map: np.ndarray, pred_map: np.ndarray, path: str) -> None:
    """Central sections and projections of the true and the (aligned) predicted map."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(12, 6))
    for row, (name, m) in enumerate((("true", ref_map), ("predicted", pred_map))):
        n = m.shape
        panels = [
            (m[:, :, n[2] // 2], "section z=1/2"),
            (m[:, n[1] // 2, :], "section y=1/2"),
            (m.sum(axis=2), "projection along c"),
            (m.sum(axis=1), "projection along b"),
        ]
        for col, (img, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(img.T, origin="lower", cmap="viridis")
            ax.set_title(f"{name}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    _save(fig, path)


def voxels_with_atoms(pred_map: np.ndarray, sites_frac: np.ndarray | None, path: str, level: float = 0.7) -> None:
    """Voxels above ``level`` of the map maximum, with the true atoms (Scripps figure)."""
    plt = _pyplot()
    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="3d")
    n = np.array(pred_map.shape)
    idx = np.argwhere(pred_map >= level * pred_map.max())
    ax.scatter(*(idx / n).T, s=6, alpha=0.4, label=f"voxels > {level:.0%} of max")
    if sites_frac is not None and len(sites_frac):
        s = np.mod(sites_frac, 1.0)
        ax.scatter(*s.T, s=40, c="red", marker="o", label="true atoms")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.legend(fontsize=7)
    _save(fig, path)


def histogram(values, xlabel: str, path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    values = [v for v in values if v is not None and np.isfinite(v)]
    ax.hist(values, bins=min(30, max(5, len(values) // 3)))
    if values:
        ax.axvline(np.median(values), color="k", ls="--", label=f"median {np.median(values):.3g}")
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("predictions")
    _save(fig, path)


def training_history(history: list, path: str) -> None:
    """Loss per epoch (train and validation, log scale) and the median validation metrics."""
    plt = _pyplot()
    keys = list(dict.fromkeys(k for row in history for k in row))
    epochs = [r["epoch"] for r in history]
    metric_keys = [k for k in keys if k.startswith("median_")]
    fig, axes = plt.subplots(1, 1 + bool(metric_keys), figsize=(10 if metric_keys else 5, 3.5), squeeze=False)
    ax = axes[0, 0]
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train")
    ax.plot(epochs, [r["val_loss"] for r in history], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    if metric_keys:
        ax = axes[0, 1]
        for k in metric_keys:
            ax.plot(epochs, [r.get(k) for r in history], marker="o", label=k[7:])
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    _save(fig, path)
