"""What drives a network's prediction: Grad-CAM maps (convolutional models) and attention maps
(the reflection transformer).

Grad-CAM (Selvaraju et al., ICCV 2017), for patterson_unet, unet3d and fft_unet: a scalar
target (the network's output summed over a region, :data:`TARGETS`) is differentiated with
respect to the activations A_k of one layer (channels k); each channel is weighted by its
mean gradient, alpha_k = mean(dT/dA_k), and the map is ReLU(sum_k alpha_k A_k), upsampled to
the network's input grid (periodically for the periodic Patterson grids) and cropped to the
unpadded grid. Large values mark where the layer holds features that, channel by channel,
raise the target. The default layer is the last block before the decoder
(:func:`default_conv_layer`).

Attention (xrd_transformer, tokens = reflections): each encoder layer's attention weights
(queries x keys, softmax rows, padding keys get zero) are recomputed from the inputs its
self-attention received during the forward pass. Two per-reflection scores come from them:
the attention a measured reflection receives from the predicted ones in the chosen layer
(averaged over heads and over the predicted queries) and the same from attention rollout
(Abnar & Zuidema, ACL 2020: the product over layers of 0.5 A + 0.5 I, which follows
attention through the residual connections).

The data are prepared by the model's Task exactly as for prediction: the Patterson from
``PattersonToDensity.network_input`` run through ``apply_passes``; the dense hkl box or the
reflection tokens are captured from ``ExtendResolution.predict_amplitudes`` itself (a
recording wrapper around the network sees the tensors that method builds).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from libtbx.utils import Sorry
from torch import nn
from torch.nn import functional as F

CONV_ARCHITECTURES = ("patterson_unet", "unet3d", "fft_unet")
ATTENTION_ARCHITECTURES = ("xrd_transformer",)
TARGETS = ("auto", "whole", "peaks", "highest_peak")


# ---------------------------------------------------------------------------- layers
def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))


def conv_layer_names(network: nn.Module) -> list:
    """Names of the modules whose output is a spatial feature map Grad-CAM can use: every
    convolution and every block or sequence holding one (not module lists, which are never
    called, and nothing inside a squeeze-excitation or a Fourier branch, whose insides are
    channel weights or Fourier coefficients rather than positions)."""
    from ml_phasing.models.fft_unet import FourierBranch
    from ml_phasing.models.patterson_unet import SqueezeExcitation

    opaque = [n for n, m in network.named_modules() if isinstance(m, (FourierBranch, SqueezeExcitation))]
    names = []
    for name, m in network.named_modules():
        if not name or isinstance(m, (nn.ModuleList, nn.ModuleDict)):
            continue
        if any(name.startswith(o + ".") for o in opaque):
            continue
        if _is_conv(m) or any(_is_conv(c) for c in m.modules()):
            names.append(name)
    return names


def default_conv_layer(network: nn.Module, architecture: str) -> str:
    """The last block before the decoder: the last residual block of the trunk
    (patterson_unet, half resolution) or the bottleneck of a U-Net (``body.down.<depth>``,
    the lowest resolution; the decoder blocks after it also see the skip connections)."""
    if architecture == "patterson_unet":
        return f"trunk.{len(network.trunk) - 1}"
    if architecture in ("unet3d", "fft_unet"):
        return f"body.down.{len(network.body.down) - 1}"
    raise ValueError(f"no Grad-CAM layer for architecture {architecture!r}")


def attention_layer_names(network: nn.Module) -> list:
    return [f"encoder.layers.{i}" for i in range(len(network.encoder.layers))]


def layer_names(network: nn.Module, architecture: str) -> list:
    if architecture in ATTENTION_ARCHITECTURES:
        return attention_layer_names(network)
    return conv_layer_names(network)


def check_layer(network: nn.Module, architecture: str, name: str | None) -> str:
    """The layer to use: ``name``, or the default; a Sorry listing the valid names otherwise."""
    if architecture not in CONV_ARCHITECTURES + ATTENTION_ARCHITECTURES:
        raise Sorry(
            f"Interpretation maps are made for the convolutional models ({', '.join(CONV_ARCHITECTURES)}) "
            f"and the transformer (xrd_transformer), not for {architecture}."
        )
    valid = layer_names(network, architecture)
    if name is None:
        return valid[-1] if architecture in ATTENTION_ARCHITECTURES else default_conv_layer(network, architecture)
    if name not in valid:
        raise Sorry(f"layer={name} is not a layer of this {architecture} network; choose one of: {', '.join(valid)}.")
    return name


@contextlib.contextmanager
def _out_of_place(network: nn.Module):
    """Turn off in-place activations while gradients are taken (an in-place ReLU after a
    recorded layer would overwrite its activations); restored afterwards."""
    changed = [m for m in network.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True


# ---------------------------------------------------------------------------- Grad-CAM
def upsample(cam: torch.Tensor, shape, periodic: bool) -> torch.Tensor:
    """(nx, ny, nz) map to ``shape``, trilinear; on a periodic grid the map wraps around
    (the faces interpolate towards the opposite faces) when every factor is an integer."""
    x = cam[None, None].float()
    if tuple(x.shape[2:]) == tuple(shape):
        return cam
    factors = [s / n for s, n in zip(shape, x.shape[2:])]
    if periodic and all(f == int(f) for f in factors):
        f = [int(v) for v in factors]
        x = F.pad(x, (1, 1, 1, 1, 1, 1), mode="circular")
        x = F.interpolate(x, size=tuple((n + 2) * k for n, k in zip(cam.shape, f)), mode="trilinear")
        return x[0, 0, f[0] : f[0] + shape[0], f[1] : f[1] + shape[1], f[2] : f[2] + shape[2]]
    return F.interpolate(x, size=tuple(shape), mode="trilinear")[0, 0]


def grad_cam(
    network: nn.Module, layer: str, forward, target, periodic: bool = False, weighting: str = "channel"
) -> dict:
    """Grad-CAM of one layer.

    ``weighting`` "channel" is Grad-CAM: each channel weighted by its mean gradient;
    "elementwise" is HiResCAM (Draelos & Carin 2020): each activation by its own gradient,
    summed over channels (gradient x activation, which Grad-CAM's averaging can cancel).

    ``forward()`` runs the network (any number of times, e.g. recycling passes: the layer's
    last activations count) and returns its output; ``target(output)`` is the scalar
    explained. Returns {"cam": numpy map on the network's (padded) input grid, normalised
    to a maximum of 1 (all zero when no channel raises the target), "raw_max", "alpha"
    (the channel weights), "layer_shape", "output" (numpy)}.
    """
    modules = dict(network.named_modules())
    if layer not in modules:
        raise Sorry(
            f"layer={layer} is not a layer of this network; choose one of: {', '.join(conv_layer_names(network))}."
        )
    seen = {}

    def keep_activation(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 5:
            seen["activation"] = output

    def keep_input(_module, inputs):
        seen["input_shape"] = tuple(inputs[0].shape[2:])

    hooks = [modules[layer].register_forward_hook(keep_activation), network.register_forward_pre_hook(keep_input)]
    try:
        with _out_of_place(network), torch.enable_grad():
            y = forward()
            if "activation" not in seen:
                raise Sorry(
                    f"layer={layer} gives no 3D feature map; choose one of: {', '.join(conv_layer_names(network))}."
                )
            a = seen["activation"]
            score = target(y)
            (g,) = torch.autograd.grad(score, a)
    finally:
        for h in hooks:
            h.remove()
    a, g = a.detach()[0].float(), g.detach()[0].float()
    alpha = g.mean(dim=(1, 2, 3))
    if weighting == "elementwise":
        cam = torch.relu((g * a).sum(0))
    else:
        cam = torch.relu((alpha[:, None, None, None] * a).sum(0))
    cam = upsample(cam, seen["input_shape"], periodic)
    raw_max = float(cam.max())
    if raw_max > 0:
        cam = cam / raw_max
    return {
        "cam": cam.cpu().numpy().astype(np.float64),
        "raw_max": raw_max,
        "alpha": alpha.cpu().numpy(),
        "layer_shape": tuple(a.shape[1:]),
        "output": y.detach().float().cpu().numpy(),
        "score": float(score.detach()),
    }


def region_target(kind: str, region: torch.Tensor | None = None, threshold: float = 0.5, peak=None):
    """The scalar Grad-CAM explains, from the network's output y (batch, 1, ...):

    * whole: y summed over ``region`` (a bool mask; everything when None);
    * peaks: y summed over the voxels of ``region`` where y >= threshold x its maximum there;
    * highest_peak: y summed over ``peak(y)``, a bool mask around its highest value.

    The masks are chosen from the output's values but carry no gradient."""

    def target(y):
        r = torch.ones_like(y, dtype=torch.bool) if region is None else region
        if kind == "whole":
            mask = r
        elif kind == "peaks":
            top = y.detach()[r].max()
            mask = r & (y.detach() >= threshold * top)
        elif kind == "highest_peak":
            mask = r & peak(torch.where(r, y.detach(), torch.full_like(y, -torch.inf)))
        else:
            raise ValueError(f"unknown target {kind!r}")
        return (y * mask).sum()

    return target


def sphere_around_maximum(unit_cell, radius: float):
    """A ``peak`` function for :func:`region_target`: the grid points within ``radius`` (A)
    of the highest one, with periodic distances in the unit cell."""

    def peak(y):
        grid = y.shape[2:]
        k = np.unravel_index(int(torch.argmax(y[0, 0])), grid)
        axes = [((np.arange(n) - k[i] + n / 2) % n - n / 2) / n for i, n in enumerate(grid)]
        fx, fy, fz = np.meshgrid(*axes, indexing="ij")
        o = np.array(unit_cell.orthogonalization_matrix()).reshape(3, 3)
        xyz = np.einsum("ij,jxyz->ixyz", o, np.stack([fx, fy, fz]))
        inside = torch.from_numpy(np.sqrt((xyz**2).sum(0)) <= max(radius, 1e-6)).to(y.device)
        return inside[None, None]

    return peak


def single_maximum(y):
    """A ``peak`` function: the single highest point (one reflection of an hkl box)."""
    mask = torch.zeros_like(y, dtype=torch.bool)
    mask.view(-1)[int(torch.argmax(y))] = True
    return mask


def resolve_target(kind: str, task_name: str) -> str:
    """auto: the predicted atoms (peaks) for density and voxel maps, all predicted amplitudes
    (whole) for resolution extension."""
    if kind != "auto":
        return kind
    return "peaks" if task_name in ("patterson_to_density", "intensity_to_density") else "whole"


def resolve_weighting(kind: str, task_name: str) -> str:
    """auto: Grad-CAM's channel weighting for density and voxel maps, elementwise for extension."""
    if kind != "auto":
        return kind
    return "channel" if task_name in ("patterson_to_density", "intensity_to_density") else "elementwise"


def patterson_grad_cam(
    bundle,
    f_obs,
    layer: str,
    target: str = "peaks",
    threshold: float = 0.5,
    radius: float = 1.0,
    device="cpu",
    weighting: str = "channel",
) -> dict:
    """Grad-CAM of a Patterson-to-density model on a user's amplitudes: the Patterson as the
    Task builds it for prediction (model's grid spacing, scaled to [-1, 1]), the network
    run as in prediction (padding, recycling passes), the map on the Patterson's grid."""
    task = bundle.task
    patterson, f_cut, f_p1 = task.network_input(f_obs)
    n = patterson.shape
    x = torch.from_numpy(np.ascontiguousarray(patterson, dtype=np.float32))[None, None].to(device)

    def forward():
        return task.apply_passes(bundle.network, x, task.passes)[..., : n[0], : n[1], : n[2]]

    peak = sphere_around_maximum(f_p1.unit_cell(), radius)
    r = grad_cam(bundle.network, layer, forward, region_target(target, None, threshold, peak), task.periodic, weighting)
    padded = r["cam"].shape
    r["cam"] = r["cam"][: n[0], : n[1], : n[2]]
    r["periodic_upsampling"] = task.periodic and tuple(padded) == tuple(n)
    r.update(
        patterson=patterson,
        density=r.pop("output")[0, 0],
        unit_cell=f_p1.unit_cell(),
        f_cut=f_cut,
        grid=tuple(n),
        d_min=task.config["map_d_min"],
    )
    return r


def extension_inputs(bundle, f_obs, d_min_target: float | None, device="cpu") -> dict:
    """The batch the model's Task feeds the network for these data (``ExtendResolution.inputs``
    and ``build_batch``, as resolution_extension.extend runs them), with its prediction."""
    task = bundle.task
    target, complete, f_input = task.inputs(f_obs, d_min_target)
    batch, example, indices = task.build_batch(
        complete, target, f_input, getattr(bundle.network, "max_index", None), device
    )
    measured = np.zeros(complete.size(), bool)
    measured[complete.match_indices(f_input).pairs().column(0).as_numpy_array()] = True
    with torch.no_grad():
        f_pred = task.amplitudes_from_output(task.forward(bundle.network, batch), example, indices)
    return {
        "complete": complete,
        "indices": indices,
        "f_pred": f_pred,
        "d": complete.d_spacings().data().as_numpy_array(),
        "measured": measured,
        "batch": batch,
        "d_min_target": target,
    }


def extension_grad_cam(
    bundle,
    f_obs,
    layer: str,
    target: str = "whole",
    threshold: float = 0.5,
    d_min_target=None,
    device="cpu",
    weighting: str = "channel",
) -> dict:
    """Grad-CAM of a dense (hkl box) extension model: the target is the output summed over
    the reflections the model predicts (not measured, not absent: the Task's own mask);
    the map is read at every reflection of the set to the target resolution."""
    task = bundle.task
    if task.tokens:
        raise Sorry("Grad-CAM needs a dense (hkl box) model; this one works on reflection tokens.")
    e = extension_inputs(bundle, f_obs, d_min_target, device)
    lo, hi = np.array(task.config["hkl_box_min"]), np.array(task.config["hkl_box_max"])
    box = tuple(int(v) for v in hi - lo + 1)
    x = e["batch"]["x"]
    batch = {"x": x}
    predicted = task.predicted_mask(batch)

    def forward():
        return task.forward(bundle.network, batch)

    r = grad_cam(
        bundle.network,
        layer,
        forward,
        region_target(target, predicted, threshold, single_maximum),
        periodic=False,
        weighting=weighting,
    )
    cam_box = r["cam"][: box[0], : box[1], : box[2]]
    rel = e["indices"].astype(int) - lo
    r.update(e)
    r.update(
        cam_box=cam_box,
        cam=cam_box[rel[:, 0], rel[:, 1], rel[:, 2]],
        box_min=lo,
        box_measured=(x[0, 2] > 0.5).cpu().numpy(),
        box_predicted=predicted[0, 0].cpu().numpy(),
    )
    del r["output"]
    return r


def intensity_grad_cam(
    bundle,
    f_obs,
    composition: dict,
    layer: str,
    target: str = "peaks",
    threshold: float = 0.5,
    device="cpu",
    weighting: str = "channel",
) -> dict:
    """Grad-CAM of a convolutional intensity-to-density (Scripps) model on its input, the |F|^2
    grid on the integer hkl cube: the network input is made from the data by
    ``intensity_prediction.network_input``, as for prediction (absolute scale and F000 from
    ``composition``),
    the target is the predicted voxel map (``region_target``), and the map is read at every
    (h, k, l) of the cube."""
    from ml_phasing.prediction import intensity_prediction

    task = bundle.task
    inputs = intensity_prediction.network_input(bundle, f_obs, composition)
    grid = inputs["x"]
    x = torch.from_numpy(np.asarray(grid, np.float32))[None, None].to(device)
    out = task.config["output_shape"]

    def forward():  # as IntensityToDensity.predict_maps: the output cropped to the voxel grid
        return task.apply(bundle.network, x)[..., : out[0], : out[1], : out[2]]

    r = grad_cam(
        bundle.network,
        layer,
        forward,
        region_target(target, None, threshold, single_maximum),
        periodic=False,
        weighting=weighting,
    )
    n = grid.shape[0]
    h = task.h_max
    cube = r["cam"][:n, :n, :n]
    index = np.stack(np.meshgrid(*(np.arange(n) - h,) * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    r.update(
        cam_cube=cube,
        input=np.asarray(grid, np.float64),
        density=r["output"][0, 0].astype(np.float64),
        indices=index,
        cam=cube.reshape(-1),
        h_max=h,
        scale_note=inputs["scale_note"],
        f000=inputs["f000"],
    )
    del r["output"]
    return r


# ---------------------------------------------------------------------------- attention
def attention_weights(network: nn.Module, args) -> list:
    """Every encoder layer's attention weights (batch, heads, queries, keys) for one forward
    pass of an xrd_transformer on ``args``, recomputed from what each self-attention received
    (its input and masks). Rows sum to 1; padding keys get 0."""
    layers = list(network.encoder.layers)
    received = {}
    hooks = []
    for i, layer in enumerate(layers):

        def keep(_module, inputs, kwargs, _output, i=i):
            received[i] = (
                inputs[0] if inputs else kwargs["query"],
                kwargs.get("key_padding_mask"),
                kwargs.get("attn_mask"),
            )

        hooks.append(layer.self_attn.register_forward_hook(keep, with_kwargs=True))
    try:
        # with gradients on, torch takes the ordinary path through each self-attention (the
        # fused inference path would skip the modules and their hooks)
        with torch.enable_grad():
            network(*args)
    finally:
        for h in hooks:
            h.remove()
    if len(received) != len(layers):
        raise RuntimeError("the transformer's self-attention modules were not called (fused path?)")
    out = []
    with torch.no_grad():
        for i, layer in enumerate(layers):
            q, kpm, am = received[i]
            _, w = layer.self_attn(
                q, q, q, key_padding_mask=kpm, attn_mask=am, need_weights=True, average_attn_weights=False
            )
            out.append(w.float().cpu().numpy())
    return out


def attention_rollout(weights: list, upto: int | None = None) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020), heads averaged: R = prod_l (0.5 A_l + 0.5 I),
    rows renormalised, through layer ``upto`` (default the last). (batch, L, L)."""
    layers = weights if upto is None else weights[: upto + 1]
    b, _, n, _ = layers[0].shape
    r = np.broadcast_to(np.eye(n), (b, n, n)).copy()
    for w in layers:
        a = 0.5 * w.mean(1) + 0.5 * np.eye(n)
        a /= a.sum(-1, keepdims=True)
        r = a @ r
    return r


def received_attention(a: np.ndarray, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Mean attention each key receives from the ``queries`` (bool masks over tokens) in an
    (L, L) matrix; zero for tokens that are not ``keys``."""
    if not queries.any():
        return np.zeros(a.shape[-1])
    score = a[queries].mean(0)
    return np.where(keys, score, 0.0)


def extension_attention(bundle, f_obs, layer: str, d_min_target=None, device="cpu") -> dict:
    """Attention maps of a token (xrd_transformer) extension model on a user's data: per
    measured reflection, the attention received from the predicted reflections in the chosen
    layer (heads averaged) and by rollout through that layer."""
    task = bundle.task
    if not task.tokens:
        raise Sorry("Attention maps need a token model (xrd_transformer).")
    e = extension_inputs(bundle, f_obs, d_min_target, device)
    args = task.token_args(e["batch"])
    weights = attention_weights(bundle.network, args)
    i_layer = int(layer.rsplit(".", 1)[1])
    measured_tok = args[2][0].cpu().numpy().astype(bool)
    padding = args[5][0].cpu().numpy().astype(bool)
    predicted_tok = ~measured_tok & ~padding
    a_layer = weights[i_layer][0].mean(0)
    rollout = attention_rollout(weights, i_layer)[0]
    n = e["complete"].size()  # tokens are the reflections of the set, in its order
    e.update(
        layer_index=i_layer,
        heads=int(weights[i_layer].shape[1]),
        matrix=a_layer[:n, :n],
        attention_layer=received_attention(a_layer, predicted_tok, measured_tok)[:n],
        attention_rollout=received_attention(rollout, predicted_tok, measured_tok)[:n],
        token_measured=measured_tok[:n],
        token_predicted=predicted_tok[:n],
    )
    return e


# ---------------------------------------------------------------------------- figures
def _sections(m: np.ndarray, centre: bool) -> list:
    """The three central sections (x, y, z normal) of a map; with ``centre`` the grid origin
    is moved to the middle first (so a Patterson's origin peak is at the centre)."""
    if centre:
        m = np.fft.fftshift(m)
    n = m.shape
    return [m[n[0] // 2], m[:, n[1] // 2], m[:, :, n[2] // 2]]


def map_sections_png(path: str, patterson, cam, density, title: str) -> None:
    """Central sections (origin at the centre) of the input Patterson, the Grad-CAM (with the
    Patterson's contours over it) and the network's output, one row per section normal to
    a, b and c."""
    from ml_phasing.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(10, 10), constrained_layout=True)
    extent = (-0.5, 0.5, -0.5, 0.5)
    rows = zip(_sections(patterson, True), _sections(cam, True), _sections(density, True))
    for r, (p, c, d) in enumerate(rows):
        normal, (u, v) = "abc"[r], [("b", "c"), ("a", "c"), ("a", "b")][r]
        n = p.shape
        grid_u = (np.arange(n[0]) - n[0] // 2) / n[0]
        grid_v = (np.arange(n[1]) - n[1] // 2) / n[1]
        axes[r, 0].imshow(p.T, origin="lower", cmap="gray", extent=extent)
        axes[r, 1].imshow(c.T, origin="lower", cmap="inferno", vmin=0, vmax=1, extent=extent)
        levels = [lv for lv in (0.1, 0.2, 0.4, 0.8) if lv < p.max()]
        if levels:
            axes[r, 1].contour(grid_u, grid_v, p.T, levels=levels, colors="white", linewidths=0.6)
        axes[r, 2].imshow(d.T, origin="lower", cmap="gray", extent=extent)
        for ax in axes[r]:
            ax.set_xlabel(u)
            ax.set_ylabel(v)
        axes[r, 0].set_title(f"Patterson (input), {normal}=0", fontsize=9)
        axes[r, 1].set_title(f"Grad-CAM, {normal}=0 (Patterson contours)", fontsize=9)
        axes[r, 2].set_title(f"network output, {normal}=0", fontsize=9)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def cube_sections_png(path: str, r: dict, title: str) -> None:
    """An intensity-to-density model's Grad-CAM (:func:`intensity_grad_cam`): the input |F|^2
    (log scale) and the Grad-CAM on the hkl planes through the origin (0kl, h0l, hk0: the cube
    is centred on 000), and the central sections of the predicted voxel map."""
    from ml_phasing.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(3, 3, figsize=(10, 10), constrained_layout=True)
    h = r["h_max"]
    extent = (-h - 0.5, h + 0.5, -h - 0.5, h + 0.5)
    grid = np.log10(np.maximum(r["input"], 1e-6))
    rows = zip(_sections(grid, False), _sections(r["cam_cube"], False), _sections(r["density"], False))
    for i, (g, c, d) in enumerate(rows):
        plane, (u, v) = ["0kl", "h0l", "hk0"][i], [("k", "l"), ("h", "l"), ("h", "k")][i]
        axes[i, 0].imshow(g.T, origin="lower", cmap="gray", extent=extent)
        axes[i, 1].imshow(c.T, origin="lower", cmap="inferno", vmin=0, vmax=1, extent=extent)
        axes[i, 2].imshow(d.T, origin="lower", cmap="gray")
        for ax in axes[i, :2]:
            ax.set_xlabel(u)
            ax.set_ylabel(v)
        axes[i, 0].set_title(f"log10 |F|^2 / F000^2 (input), {plane}", fontsize=9)
        axes[i, 1].set_title(f"Grad-CAM, {plane}", fontsize=9)
        axes[i, 2].set_title(f"predicted voxels, section {'abc'[i]}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def box_sections_png(path: str, r: dict, title: str) -> None:
    """Grad-CAM of a dense extension model on the hkl planes through the origin (hk0, h0l,
    0kl; measured reflections outlined) and per reflection against resolution."""
    from ml_phasing.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 4), constrained_layout=True)
    lo, cam, meas = r["box_min"], r["cam_box"], r["box_measured"]
    hi = lo + np.array(cam.shape) - 1
    planes = [("hk0", 2, ("h", "k")), ("h0l", 1, ("h", "l")), ("0kl", 0, ("k", "l"))]
    for ax, (name, axis, (u, v)) in zip(axes, planes):
        i0 = int(-lo[axis])
        sec, msec = np.take(cam, i0, axis=axis), np.take(meas, i0, axis=axis)
        others = [a for a in range(3) if a != axis]
        extent = (lo[others[0]] - 0.5, hi[others[0]] + 0.5, lo[others[1]] - 0.5, hi[others[1]] + 0.5)
        ax.imshow(sec.T, origin="lower", cmap="inferno", vmin=0, vmax=1, extent=extent)
        ax.contour(
            np.arange(lo[others[0]], hi[others[0]] + 1),
            np.arange(lo[others[1]], hi[others[1]] + 1),
            msec.T.astype(float),
            levels=[0.5],
            colors="cyan",
            linewidths=0.8,
        )
        ax.set_title(f"Grad-CAM, {name} (cyan: measured)", fontsize=9)
        ax.set_xlabel(u)
        ax.set_ylabel(v)
    ax = axes[3]
    m = r["measured"]
    ax.scatter(1 / r["d"][m] ** 2, r["cam"][m], s=6, label="measured", alpha=0.7)
    ax.scatter(1 / r["d"][~m] ** 2, r["cam"][~m], s=6, label="predicted", alpha=0.7)
    ax.set_xlabel("1/d^2 (1/A^2)")
    ax.set_ylabel("Grad-CAM")
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)


def attention_png(path: str, r: dict, title: str) -> None:
    """Attention received per measured reflection against resolution (chosen layer and
    rollout), and the predicted-to-measured attention matrix sorted by resolution."""
    from ml_phasing.plots import _pyplot, _save

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    m = r["token_measured"]
    s = 1 / r["d"] ** 2
    ax = axes[0]
    ax.scatter(s[m], r["attention_layer"][m], s=6, label=f"layer {r['layer_index']} (heads averaged)", alpha=0.7)
    ax.scatter(s[m], r["attention_rollout"][m], s=6, label="rollout", alpha=0.7)
    ax.set_xlabel("1/d^2 (1/A^2) of the measured reflection")
    ax.set_ylabel("attention received from predicted reflections")
    ax.legend(fontsize=8)
    q = np.where(r["token_predicted"])[0]
    k = np.where(m)[0]
    q, k = q[np.argsort(r["d"][q])[::-1]], k[np.argsort(r["d"][k])[::-1]]
    ax = axes[1]
    if len(q) and len(k):
        sub = r["matrix"][np.ix_(q, k)]
        im = ax.imshow(sub, aspect="auto", cmap="viridis", vmax=max(float(np.percentile(sub, 99.5)), 1e-12))
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xlabel("measured reflections (low to high resolution)")
    ax.set_ylabel("predicted reflections (low to high resolution)")
    ax.set_title(f"attention, layer {r['layer_index']}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
