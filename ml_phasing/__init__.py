"""ml_phasing: deep learning for the crystallographic phase problem.

Import order matters (see docs/architecture.md): the cctbx wheel ships its own
C++ runtime, so boost_adaptbx must be loaded before torch or gemmi, and torch
before cctbx.miller so that torch keeps its OpenMP threads.

torch takes about 1.5 s to import. A console script asked only for its help, its
defaults or its citations runs no network, so there it is not imported at all
(:func:`help_only`); everywhere else it is imported here, before anything loads cctbx.
"""

import os as _os
import sys as _sys

import boost_adaptbx.boost.python  # noqa: F401  (must come first)

_HELP_FLAGS = ("-h", "--help", "--citations", "--show-defaults", "--show_defaults")


def help_only(argv) -> bool:
    """True when ``argv`` runs an ml_phasing console script for its help, its defaults
    (``--show-defaults[=LEVEL]``) or its citations only."""
    if not argv or not _os.path.basename(str(argv[0])).startswith("ml_phasing."):
        return False
    args = [str(a) for a in argv[1:]]
    return bool(args) and all(a.split("=", 1)[0] in _HELP_FLAGS or a.isdigit() for a in args)


if not help_only(_sys.argv):
    import torch  # noqa: F401  (before cctbx.miller / iotbx.mtz)

from ml_phasing.version import __version__  # noqa: E402

__all__ = ["__version__", "help_only"]
