"""Grad-CAM and attention maps: which parts of the input drive a network's prediction."""

# LIBTBX_SET_DISPATCHER_NAME ml_phasing.interpret
from ml_phasing.program_support import run_cli
from ml_phasing.programs import interpret


def run(args=None):
    return run_cli(interpret.Program, args)


if __name__ == "__main__":
    import sys

    sys.exit(run())
