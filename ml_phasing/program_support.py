"""What every ml_phasing program shares: the error contract, the log, progress bars.

* A user's mistake is raised as :class:`libtbx.utils.Sorry` and becomes one
  ``Sorry: ...`` line on stderr and exit status 1 (:func:`run_cli`).
  Anything else is a bug and keeps its traceback.
* Every run logs the package version, the parameters changed from their
  defaults, the random seed and the device, to the terminal and to a log file.
* Long loops get a tqdm progress bar that stays quiet when stderr is not a
  terminal (pipelines, CI, CCP4i2 wrappers).
"""

from __future__ import annotations

import contextlib
import errno
import os
import platform
import sys

from iotbx.cli_parser import CCTBXParser, run_program
from libtbx.utils import Sorry

from ml_phasing.version import __version__

ISSUES_URL = "https://github.com/ml-phasing/ml_phasing/issues"


class Parser(CCTBXParser):
    """iotbx's parser, with file handling that never unpickles a file.

    iotbx's own ``process_files`` recognises files with ``any_file``, which tries
    ``pickle.load`` on anything it does not know: a pickled "data.mtz" would run
    its code. Here each file is recognised from its content
    (:mod:`ml_phasing.io.file_formats`): PHIL files are parsed as text (a malformed
    one is a Sorry, not "unused"), MTZ and reflection CIFs are read by their own
    readers and handed to the DataManager in memory, and a pickle is refused.
    Everything else (SHELX .hkl, which needs the symmetry parameters first, and
    files the program reads itself) is left in ``data_manager.unrecognised_files``.
    """

    # ProgramTemplate's reserved output scope, which iotbx adds to every program; ml_phasing
    # names its outputs from output.prefix (or output.directory), so these are not used.
    UNUSED_OUTPUT = ("filename", "file_name", "suffix", "serial", "serial_format", "target_output_format")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for scope in self.master_phil.objects:  # hidden from --show-defaults (expert level 4)
            if scope.name == "output" and scope.is_scope:
                for definition in scope.objects:
                    if definition.name in self.UNUSED_OUTPUT:
                        definition.expert_level = 4

    def _resolved_paths(self, phil_list) -> list:
        """(key as written, full paths it sets) for each key=value argument libtbx can place."""
        interpreter = self.master_phil.command_line_argument_interpreter(assume_when_ambiguous=False)
        resolved = []
        for arg in phil_list:
            key = arg.split("=", 1)[0].strip()
            if "=" not in arg or not key:
                continue
            try:
                paths = [d.path for d in interpreter.process_arg(arg=arg).all_definitions()]
            except Exception:  # noqa: BLE001 - iotbx reports it, or it is a DataManager key
                continue
            resolved.append((key, paths))
        return resolved

    def _refuse_unused_output(self, resolved):
        for _key, paths in resolved:
            for path in paths:
                if path.startswith("output.") and path.split(".", 1)[1] in self.UNUSED_OUTPUT:
                    raise Sorry(
                        f"{path} is not used by {self.program_class.program_name or 'this program'}: its outputs "
                        "are named from output.prefix (or output.directory)."
                    )

    def process_phil(self, phil_list):
        """iotbx's PHIL handling, then a note for each command-line key that libtbx matched to a
        longer name (``refinement.cycle=3`` sets ``refinement.cycles``): said, not silent."""
        resolved = self._resolved_paths(phil_list)
        self._refuse_unused_output(resolved)
        try:
            result = super().process_phil(phil_list)
        except ValueError as e:
            # a user's value that cctbx refuses while PHIL converts it (symmetry.unit_cell=0,10,10,...:
            # "Unit cell parameter is zero or negative")
            raise Sorry(f"{str(e).strip()} ({', '.join(phil_list)})") from None
        for key, paths in resolved:
            if paths and not any(p == key or p.endswith("." + key) for p in paths):
                print(f"  Note: {key}= was taken as {paths[0]}= (libtbx accepts abbreviated names)", file=self.logger)
        return result

    def process_files(self, file_list, message="Processing files:"):
        from ml_phasing.io import file_formats

        print(message, file=self.logger)
        unused, data_files = [], []
        for path in file_list:
            kind = file_formats.detect(path)
            if kind != "phil":
                data_files.append(path)
            if kind == "pickle":
                file_formats.refuse_pickle(path)
            if kind == "phil" and hasattr(self.data_manager, "add_phil"):
                self.data_manager.add_phil(path, file_formats.parse_phil_file(path))
                print(f"  Found phil, {path}", file=self.logger)
            elif kind in ("mtz", "cif") and hasattr(self.data_manager, "add_miller_array"):
                try:
                    self.data_manager.add_miller_array(path, file_formats.reflection_file(path))
                except Sorry:
                    unused.append(path)  # e.g. a model CIF: the program reads it itself
                    continue
                except Exception as e:  # noqa: BLE001 - iotbx raises RuntimeError etc. for damaged data
                    text = str(e).replace("cctbx Error: ", "").splitlines()[0] if str(e) else type(e).__name__
                    raise Sorry(
                        f"Cannot read {path} (damaged, or NaN/missing values where a sigma is given): {text}"
                    ) from None
                print(f"  Found miller_array, {path}", file=self.logger)
            else:
                unused.append(path)
        if unused:
            print("  Files read by the program itself: " + ", ".join(unused), file=self.logger)
        print("", file=self.logger)
        # iotbx calls this twice: for the files on the command line, then for the files PHIL
        # keywords name (prediction.file=, phases.file=, ...); keep both, and the command line's
        # own data files (not its .eff/.phil files) in their order (positional_files), which the
        # second call must not replace
        dm = self.data_manager
        if message == "Processing files:":
            dm.positional_files = data_files
        dm.unrecognised_files = list(getattr(dm, "unrecognised_files", None) or []) + unused


def run_cli(program_class, args=None) -> int:
    """Run a ProgramTemplate through iotbx's parser with the Sorry contract.

    Returns the exit status (the console-script wrapper passes it to sys.exit).
    """
    if args is None:
        args = sys.argv[1:]
    try:
        run_program(program_class=program_class, parser_class=Parser, args=list(args))
    except Sorry as e:
        sys.stdout.flush()
        text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())  # one line
        print(f"Sorry: {text}", file=sys.stderr)
        return 1
    except RuntimeError as e:
        # libtbx.phil reports a user's type or range error ("engine.cycles=abc", "nproc=0") as a
        # RuntimeError naming the parameter and its source; anything else is a bug.
        text = str(e)
        if not _is_phil_error(text):
            raise
        sys.stdout.flush()
        print(f"Sorry: {text.splitlines()[0]}".rstrip(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        sys.stdout.flush()
        print("Interrupted: rerun the same command to resume.", file=sys.stderr)
        return 130
    except OSError as e:
        # the machine's fault, not the program's: a full disk, a quota, a read-only or
        # unwritable output directory. Anything else is a bug and keeps its traceback.
        if e.errno not in _DISK_ERRORS:
            raise
        sys.stdout.flush()
        where = f" {e.filename}" if e.filename else ""
        print(
            f"Sorry: Cannot write{where}: {e.strerror or e}. Complete outputs already written are kept; "
            "nothing half-written is left.",
            file=sys.stderr,
        )
        return 1
    return 0


_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


_PHIL_ERRORS = (
    "Error interpreting",
    "value must be",
    "not a possible choice",
    "Unexpected definition",
    "Syntax error",
    "Missing value",
    "must be at least",
    "must not exceed",
    "Not a valid choice",
    "less than the minimum allowed",
    "greater than the maximum allowed",
    "Unknown choice",
)


def _is_phil_error(text: str) -> bool:
    return ("command line argument" in text or "(file " in text or "input line" in text) and any(
        key in text for key in _PHIL_ERRORS
    )


def resolve_device(name: str) -> str:
    """Turn the PHIL ``device`` choice into a torch device string."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise Sorry("device=cuda was requested but torch sees no CUDA device; use device=cpu.")
    return name


class LogFile:
    """Send a program's log (including the parser output so far) to a file too."""

    def __init__(self, program, path: str, append: bool = False):
        from libtbx.utils import multi_out

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        # line-buffered, so that a killed run leaves its log up to the last line; a resumed run appends
        self.handle = open(path, "a" if append else "w", buffering=1)
        self.original = program.logger
        logger = program.logger
        if "parser_log" in getattr(logger, "labels", []):
            logger.replace_stringio("parser_log", "logfile", self.handle)
        elif hasattr(logger, "register"):
            logger.register("logfile", self.handle)
        else:  # a plain stream or null_out: wrap it
            program.logger = multi_out().register("original", logger).register("logfile", self.handle)

    def close(self, program):
        logger = program.logger
        if logger is not self.original:
            program.logger = self.original
        elif "logfile" in getattr(logger, "labels", []):
            i = logger.labels.index("logfile")
            for attr in ("labels", "file_objects", "atexit_send_to"):
                getattr(logger, attr).pop(i)
        self.handle.close()


def refuse_existing(paths, overwrite: bool) -> None:
    """A Sorry naming the outputs that exist already, unless --overwrite: a second run on the
    same prefix replaces nothing."""
    existing = [p for p in paths if os.path.exists(p)]
    if existing and not overwrite:
        raise Sorry(f"{', '.join(existing)} exist; add --overwrite or choose output.prefix.")


def print_input(info: dict, out) -> None:
    """The reflections a program read (reflection_io's description) and the notes on them."""
    print(
        f"Read {info['n_reflections']} reflections from {info['file']} ({info['labels']}"
        f"{', French-Wilson' if info['intensities_converted'] else ''}), {info['space_group']}, "
        f"cell {tuple(info['unit_cell'])}, d_min {info['d_min']:.2f} A",
        file=out,
    )
    print_notes(info["notes"], out)


def print_notes(notes, out) -> None:
    """What a program changed without being asked in so many words, one 'Note:' line each."""
    for note in notes:
        print(f"  Note: {note}", file=out)


def make_output_directory(directory: str) -> None:
    """Create an output directory, with a Sorry where that is not possible (a missing parent,
    a read-only file system, no permission)."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise Sorry(f"Cannot create the output directory {directory}: {e.strerror or e}.") from None
    if not os.access(directory, os.W_OK):
        raise Sorry(f"The output directory {directory} is not writable.")


@contextlib.contextmanager
def logged(program, path: str, append: bool = False):
    """Log to ``path`` too while the block runs (the file is closed whatever happens).

    The run holds an exclusive lock on ``<path>.lock`` meanwhile: a second run with the same
    output prefix is refused (one Sorry, nothing written) instead of mixing its files with ours.
    """
    import fcntl

    lock_path = f"{path}.lock"
    make_output_directory(os.path.dirname(os.path.abspath(path)))
    lock = open(lock_path, "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise Sorry(
            f"Another run is writing {os.path.splitext(path)[0]}.* now (lock {lock_path}); "
            "wait for it or choose another output.prefix."
        ) from None
    try:
        log = LogFile(program, path, append=append)
        try:
            yield log
        finally:
            log.close(program)
    finally:
        try:
            os.remove(lock_path)
        except OSError:
            pass
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def input_file(program) -> str:
    """The input reflections: input.file=, else the first file on the command line (read or
    not), else the first miller array the DataManager holds (a caller may hand data over in
    memory), else the first file the program reads itself.

    A Sorry when there is none, or when it is neither in the DataManager nor a file.
    """
    path = program.params.input.file
    dm = program.data_manager
    names = dm.get_miller_array_names() if dm else []
    positional = getattr(dm, "positional_files", None) or []
    unrecognised = getattr(dm, "unrecognised_files", None) or []
    path = path or (positional[0] if positional else None) or (names[0] if names else None)
    path = path or (unrecognised[0] if unrecognised else None)
    if path is None:
        raise Sorry("No input: give an MTZ/.hkl/mmCIF file with amplitudes or intensities.")
    if path not in names and not os.path.isfile(path):
        raise Sorry(f"File not found: {path}")
    return path


def observed_amplitudes(program, path: str, labels, symmetry):
    """``reflection_io.read_observed_amplitudes`` on the arrays the DataManager holds under
    ``path`` (MTZ and reflection CIFs the parser read, or data a Phenix GUI or ``run_program``
    caller added in memory); SHELX .hkl and other files the DataManager cannot read are read
    from disk by ml_phasing's own readers."""
    from ml_phasing.io import reflection_io

    dm = program.data_manager
    arrays = None
    if dm is not None and path in dm.get_miller_array_names():
        arrays = dm.get_miller_array(path).as_miller_arrays()
    return reflection_io.read_observed_amplitudes(path, labels, symmetry, arrays=arrays)


def symmetry_from_params(scope):
    """crystal.symmetry from a symmetry { unit_cell space_group } scope, or None when both are unset."""
    from cctbx import crystal

    if scope.unit_cell is None and scope.space_group is None:
        return None
    if scope.unit_cell is not None and scope.space_group is not None:
        group = scope.space_group.group()
        if not group.is_compatible_unit_cell(scope.unit_cell):
            # cctbx would average the cell to fit the group (9.5, 10, 10.5 A with P 4 3 2 became
            # a 10.008 A cube and 618 reflections merged into 51): refuse instead.
            cell = ", ".join(f"{x:g}" for x in scope.unit_cell.parameters())
            fitted = ", ".join(f"{x:.4g}" for x in group.average_unit_cell(scope.unit_cell).parameters())
            raise Sorry(
                f"symmetry.unit_cell=({cell}) does not fit space group {scope.space_group} "
                f"(the nearest cell that does is ({fitted})); check the cell and the space group."
            )
    return crystal.symmetry(
        unit_cell=scope.unit_cell, space_group_info=scope.space_group, assert_is_compatible_unit_cell=False
    )


def log_header(program, seed: int | None, device: str | None) -> None:
    """Print version, platform, changed parameters, seed and device."""
    import torch

    out = program.logger
    print(f"{program.program_name} {__version__}", file=out)
    print(
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {_version('numpy')}, cctbx {_version('cctbx-base')}, gemmi {_version('gemmi')}",
        file=out,
    )
    print(f"command: {' '.join([os.path.basename(sys.argv[0])] + sys.argv[1:])}", file=out)
    if seed is not None:
        print(f"random_seed: {seed}", file=out)
    if device is not None:
        print(f"device: {device}", file=out)
    diff = program.get_program_phil_str(diff=True).strip()
    print("parameters changed from their defaults:", file=out)
    print(diff if diff else "  (none)", file=out)
    print("", file=out)


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def package_versions() -> dict:
    """Versions recorded in manifests and model files."""
    import torch

    return {
        "ml_phasing": __version__,
        "python": platform.python_version(),
        "cctbx-base": _version("cctbx-base"),
        "gemmi": _version("gemmi"),
        "numpy": _version("numpy"),
        "torch": torch.__version__.split("+")[0],
        "h5py": _version("h5py"),
    }


def progress(iterable=None, total=None, desc=None, unit="it"):
    """tqdm bar on stderr, disabled when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        dynamic_ncols=True,
    )


def jsonable(o):
    """JSON for what the programs' results hold besides plain values: numpy scalars and
    arrays, dataclasses; anything else as its string."""
    import dataclasses

    import numpy as np

    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    return str(o)


class ResultsMixin:
    """``get_results`` (the dict a program's run leaves in ``self.result``) and its JSON,
    the same for every program (``--json`` and ``run_program`` callers)."""

    def get_results(self):
        return getattr(self, "result", None)

    def get_results_as_JSON(self):
        import json

        return json.dumps(self.get_results(), indent=2, default=jsonable)
