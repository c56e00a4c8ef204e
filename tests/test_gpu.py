"""The CUDA path (issue 14): runs wherever torch sees a GPU, skipped elsewhere (marker ``gpu``).

The shipped Patterson-to-density model predicts the same density on the GPU as on the CPU
(float32 convolutions: agreement to 1e-3 of the map's range), and a training step runs there.
"""

import numpy as np
import pytest
import torch

from ml_phasing.prediction import density_prediction
from ml_phasing.models.model_file import load_bundle, shipped_models

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device"),
]


def test_prediction_on_the_gpu_matches_the_cpu():
    from cctbx import sgtbx
    from cctbx.development import random_structure

    xs = random_structure.xray_structure(
        sgtbx.space_group_info("P1"), elements=["C"] * 8, unit_cell=(10, 10, 10, 90, 90, 90), random_u_iso=False
    )
    f_obs = abs(xs.structure_factors(d_min=1.5).f_calc()).set_observation_type_xray_amplitude()
    path = shipped_models()["dialanine_10A"]
    out = {}
    for device in ("cpu", "cuda"):
        bundle = load_bundle(path, task="patterson_to_density", device=device)
        out[device] = density_prediction.predict(bundle, f_obs, device=device, rotations=2)["network_density"]
    span = float(np.ptp(out["cpu"]))
    assert np.max(np.abs(out["cpu"] - out["cuda"])) < 1e-3 * span


def test_a_training_step_on_the_gpu():
    from ml_phasing.models import ARCHITECTURES

    model = ARCHITECTURES["patterson_unet"](stem_channels=3, channels=4, n_blocks=1).cuda()
    x = torch.randn(2, 1, 16, 16, 16, device="cuda")
    loss = (model(x) - x).pow(2).mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
