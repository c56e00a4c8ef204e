"""Generate simulated crystallographic training data."""

# LIBTBX_SET_DISPATCHER_NAME ml_phasing.simulate
from ml_phasing.program_support import run_cli
from ml_phasing.programs import simulate


def run(args=None):
    return run_cli(simulate.Program, args)


if __name__ == "__main__":
    import sys

    sys.exit(run())
