"""Predict a density map and phases from measured amplitudes (Patterson -> density network)."""

# LIBTBX_SET_DISPATCHER_NAME ml_phasing.patterson_to_density
from ml_phasing.program_support import run_cli
from ml_phasing.programs import patterson_to_density


def run(args=None):
    return run_cli(patterson_to_density.Program, args)


if __name__ == "__main__":
    import sys

    sys.exit(run())
