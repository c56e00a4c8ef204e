"""libtbx build hook: make ml_phasing importable inside a Phenix/CCP4 installation.

When this checkout is configured as a module (``libtbx.configure ml_phasing``),
libtbx runs this file on every refresh. It installs the package in editable
mode into the libtbx Python, so ``ml_phasing.command_line`` and
``ml_phasing.phil`` resolve exactly as with ``pip install -e`` (setup.py maps the
top-level folders into the package), and libtbx writes the dispatchers named
by the ``# LIBTBX_SET_DISPATCHER_NAME`` lines of command_line/*.py.
"""

import os
import subprocess
import sys

try:
    import libtbx.load_env  # noqa: F401  (present only under libtbx)

    _here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", _here],
        check=True,
    )
except ImportError:
    pass
