"""ml_phasing: deep learning for the crystallographic phase problem.

Import order matters (see docs/architecture.md): the cctbx wheel ships its own
C++ runtime, so boost_adaptbx must be loaded before torch or gemmi, and torch
before cctbx.miller so that torch keeps its OpenMP threads.
"""

import boost_adaptbx.boost.python  # noqa: F401  (must come first)
import torch  # noqa: F401  (before cctbx.miller / iotbx.mtz)

from ml_phasing.version import __version__  # noqa: E402

__all__ = ["__version__"]
