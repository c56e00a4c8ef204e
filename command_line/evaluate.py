"""Judge predicted phases, maps or amplitudes against the truth (cphasematch-style)."""

# LIBTBX_SET_DISPATCHER_NAME ml_phasing.evaluate
from ml_phasing.program_support import run_cli
from ml_phasing.programs import evaluate


def run(args=None):
    return run_cli(evaluate.Program, args)


if __name__ == "__main__":
    import sys

    sys.exit(run())
