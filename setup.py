"""Packaging for ml_phasing.

``command_line/`` and ``phil/`` live at the top of the checkout (design card) but
are installed as ``ml_phasing.command_line`` and ``ml_phasing.phil`` so every
import path is unique, for editable and regular installs alike.
"""

import os
import re

from setuptools import setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    with open(os.path.join(HERE, "ml_phasing", "version.py")) as f:
        return re.search(r'__version__ = "([^"]+)"', f.read()).group(1)


def console_scripts():
    """One ``ml_phasing.<stem>`` script per file in command_line/ (as DIALS does)."""
    folder = os.path.join(HERE, "command_line")
    stems = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))
    return [f"ml_phasing.{s} = ml_phasing.command_line.{s}:run" for s in stems]


setup(
    name="ml_phasing",
    version=read_version(),
    description="Deep learning for the crystallographic phase problem, as CCP4/Phenix programs",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.9",
    packages=[
        "ml_phasing",
        "ml_phasing.programs",
        "ml_phasing.sources",
        "ml_phasing.examples",
        "ml_phasing.io",
        "ml_phasing.prediction",
        "ml_phasing.models",
        "ml_phasing.metrics",
        "ml_phasing.phasing",
        "ml_phasing.tasks",
        "ml_phasing.training",
        "ml_phasing.ccp4i2",
        "ml_phasing.command_line",
        "ml_phasing.phil",
    ],
    package_dir={
        "ml_phasing": "ml_phasing",
        "ml_phasing.command_line": "command_line",
        "ml_phasing.phil": "phil",
    },
    package_data={
        "ml_phasing.phil": ["*.eff"],
        "ml_phasing.models": ["data/*.pt", "data/*.json"],
        "ml_phasing.ccp4i2": ["*.def.xml"],
    },
    install_requires=[
        "cctbx-base>=2025.11",
        "gemmi>=0.7",
        "numpy",
        "torch>=2.0",
        "h5py",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "test": [
            "pytest",
            "ruff",
            "ccp4i2==3.0.1",
            # headless Coot reads our maps and MTZs in tests/test_map_files.py (GPLv3, tests only;
            # only a release candidate exists, with wheels for Linux and macOS, Python >= 3.10)
            'coot-headless-api==1.3.3rc1; python_version >= "3.10" and platform_system != "Windows"',
        ],
        "ccp4i2": ["ccp4i2==3.0.1"],
    },
    entry_points={"console_scripts": console_scripts()},
)
