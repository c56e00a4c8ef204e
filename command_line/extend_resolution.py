"""Predict unmeasured high-resolution amplitudes and hand them to phasing."""

# LIBTBX_SET_DISPATCHER_NAME ml_phasing.extend_resolution
from ml_phasing.program_support import run_cli
from ml_phasing.programs import extend_resolution


def run(args=None):
    return run_cli(extend_resolution.Program, args)


if __name__ == "__main__":
    import sys

    sys.exit(run())
