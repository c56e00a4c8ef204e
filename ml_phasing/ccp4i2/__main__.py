"""``python -m ml_phasing.ccp4i2``: register the tasks with CCP4i2 (docs/ccp4i2.md).

python -m ml_phasing.ccp4i2 tasks-py          the TASKS entries for ccp4i2/core/tasks.py
python -m ml_phasing.ccp4i2 i2run TASK ARGS   i2run with the ml_phasing tasks registered
                                             (Django settings ccp4i2.config.settings, SQLite
                                             database in $CCP4I2_HOME, created if need be)
"""

import boost_adaptbx.boost.python  # noqa: F401  (before gemmi: docs/ccp4i2.md)
import torch  # noqa: F401

import argparse
import os
import sys

from ml_phasing import ccp4i2 as tasks


def i2run(args):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccp4i2.config.settings")
    tasks.register()
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from ccp4i2.cli.i2run.CCP4i2RunnerDjango import CCP4i2RunnerDjango

    runner = CCP4i2RunnerDjango(the_args=list(args), parser=argparse.ArgumentParser(prog="i2run"))
    runner.parseArgs()  # as ccp4i2's own "manage.py i2run" command does, before execute()
    _job_id, exit_code = runner.execute()
    return exit_code


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tasks-py"]:
        print(tasks.tasks_py_entries())
        return 0
    if argv[:1] == ["i2run"] and len(argv) > 1:
        return i2run(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
