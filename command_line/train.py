"""Train a network on simulated data (CPU, GPU, or several with torchrun)."""

# LIBTBX_SET_DISPATCHER_NAME ml_phasing.train
from ml_phasing.program_support import run_cli
from ml_phasing.programs import train


def run(args=None):
    return run_cli(train.Program, args)


if __name__ == "__main__":
    import sys

    sys.exit(run())
