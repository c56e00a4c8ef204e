"""Solve a structure: phase starts -> dual-space recycling and least squares -> refined atoms."""

# LIBTBX_SET_DISPATCHER_NAME ml_phasing.solve
from ml_phasing.program_support import run_cli
from ml_phasing.programs import solve


def run(args=None):
    return run_cli(solve.Program, args)


if __name__ == "__main__":
    import sys

    sys.exit(run())
