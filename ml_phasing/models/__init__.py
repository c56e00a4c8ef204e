"""The seed papers' networks, one module each, and a registry for model files.

Every model's constructor takes typed keyword arguments that map one to one onto
a PHIL ``model { }`` scope, so a model file can rebuild it from those arguments.
"""

from ml_phasing.models.fft_unet import FFTUNet3D
from ml_phasing.models.mlp import MLP
from ml_phasing.models.patterson_unet import PattersonResNet
from ml_phasing.models.unet3d import UNet3D
from ml_phasing.models.xrd_transformer import XRDTransformer

ARCHITECTURES = {
    "mlp": MLP,
    "unet3d": UNet3D,
    "patterson_unet": PattersonResNet,
    "fft_unet": FFTUNet3D,
    "xrd_transformer": XRDTransformer,
}


def pad_multiple(arch: str, kw: dict) -> int:
    """The multiple a network needs its input grid to be (it halves the grid that often)."""
    if arch in ("unet3d", "fft_unet"):
        return 2 ** kw["depth"]
    if arch == "patterson_unet":
        return 2
    return 1


__all__ = ["ARCHITECTURES", "pad_multiple", "MLP", "UNet3D", "PattersonResNet", "FFTUNet3D", "XRDTransformer"]
