"""Sharded HDF5 datasets of simulated examples, and a torch Dataset over them.

Layout of a dataset directory::

    dataset.json           manifest: full PHIL, package versions, shard layout
    shard_00000.h5         examples [0, n) ...
    shard_00001.h5         examples [n, 2n) ...

Each shard holds *ragged fields*: for a field ``name`` the group ``name`` has
``values`` (all examples concatenated along axis 0, flattened), ``offsets``
(n_examples + 1) and ``shapes`` (n_examples x ndim), so examples of different
sizes (cells, grids, reflection counts) sit side by side and any one can be
read without touching the others. ``meta`` holds one JSON string per example.

A shard is written under a temporary name and renamed when complete, so a
shard file that exists is complete; its attributes record the parameter
fingerprint it was made with and the hkl box its reflections span.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os

import h5py
import numpy as np

from ml_phasing.io.atomic_io import publish, remove_stale, temporary_name, write_text

MANIFEST = "dataset.json"
FORMAT_VERSION = 1
FLUSH_EVERY = 256


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.h5"


def fingerprint(params_text: str) -> str:
    """A short hash of the parameters that decide a dataset's content."""
    return hashlib.sha256(params_text.encode()).hexdigest()[:16]


class ShardWriter:
    """Append examples to one shard file; memory stays bounded by FLUSH_EVERY."""

    def __init__(self, path: str, attrs: dict, compression: str | None = None):
        self.path = path
        self.compression = compression
        remove_stale(path)
        self._tmp = temporary_name(path)
        self._raw = _GuardedFile(self._tmp, "w+")
        self.file = h5py.File(self._raw, "w", track_order=True)
        for k, v in attrs.items():
            self.file.attrs[k] = v
        self.buffer: dict[str, list] = {}
        self.meta: list[str] = []
        self.n = 0
        self.box_min = np.array([0, 0, 0])
        self.box_max = np.array([0, 0, 0])

    def append(self, example: dict):
        self.meta.append(json.dumps(example["meta"], sort_keys=True))
        for name, value in example["fields"].items():
            self.buffer.setdefault(name, []).append(np.ascontiguousarray(value))
        idx = example["fields"].get("reflections/indices")
        if idx is not None and len(idx):
            self.box_min = np.minimum(self.box_min, idx.min(0))
            self.box_max = np.maximum(self.box_max, idx.max(0))
        self.n += 1
        if len(self.meta) >= FLUSH_EVERY:
            self.flush()

    def flush(self):
        self._flush()
        self._raw.raise_if_failed()

    def _flush(self):
        if not self.meta:
            return
        f = self.file
        for name, arrays in self.buffer.items():
            if len(arrays) != len(self.meta):
                raise RuntimeError(f"field {name} missing from some examples")
            flat = np.concatenate([a.reshape(-1) for a in arrays])
            sizes = np.array([a.size for a in arrays], np.int64)
            shapes = np.array([a.shape for a in arrays], np.int32).reshape(len(arrays), -1)
            if name not in f:
                g = f.create_group(name)
                g.create_dataset("values", data=flat, maxshape=(None,), chunks=True, compression=self.compression)
                g.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(sizes)]), maxshape=(None,), chunks=True)
                g.create_dataset("shapes", data=shapes, maxshape=(None, shapes.shape[1]), chunks=True)
            else:
                g = f[name]
                _extend(g["values"], flat)
                last = g["offsets"][-1]
                _extend(g["offsets"], last + np.cumsum(sizes))
                _extend(g["shapes"], shapes)
        meta = np.array(self.meta, dtype=h5py.string_dtype())
        if "meta" not in f:
            f.create_dataset("meta", data=meta, maxshape=(None,), chunks=True)
        else:
            _extend(f["meta"], meta)
        self.buffer = {}
        self.meta = []

    def close(self):
        """Finish the shard and move it to its final name."""
        self.flush()
        self.file.attrs["n_examples"] = self.n
        self.file.attrs["hkl_box_min"] = self.box_min
        self.file.attrs["hkl_box_max"] = self.box_max
        self.file.attrs["complete"] = True
        self.file.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        self._raw.raise_if_failed()
        publish(self._tmp, self.path)

    def abort(self):
        """Drop the partial shard (killed run, full disk)."""
        try:
            with contextlib.suppress(Exception):
                self.file.close()
            with contextlib.suppress(Exception):
                self._raw.close()
        finally:
            if os.path.exists(self._tmp):
                os.remove(self._tmp)


class _GuardedFile(io.FileIO):
    """The shard's file, handed to h5py as a Python file object.

    h5py's own (sec2) driver meets a full disk inside HDF5: the first failed write is
    reported only as an "Exception ignored" when an h5py object is freed, and HDF5 later
    crashes the interpreter (exit 139, measured on a 64 kB tmpfs). Here the first OSError
    is kept, later writes are dropped (the shard is discarded anyway) so HDF5 never sees
    a failure, and :meth:`raise_if_failed` raises the OSError at the next flush or close.
    """

    error = None

    def write(self, data):
        if self.error is None:
            try:
                return self._write_raw(data)
            except OSError as e:
                self.error = e
        return len(data)

    def _write_raw(self, data):
        return io.FileIO.write(self, data)

    def flush(self):
        if self.error is None:
            try:
                super().flush()
            except OSError as e:
                self.error = e

    def raise_if_failed(self):
        if self.error is not None:
            raise self.error


def _extend(dset, data):
    n = dset.shape[0]
    dset.resize(n + len(data), axis=0)
    dset[n:] = data


def shard_is_complete(path: str, expected_fingerprint: str, expected_n: int) -> bool | None:
    """True: complete and matching; False: absent or unreadable; None: another dataset's shard."""
    if not os.path.exists(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            if not f.attrs.get("complete", False) or int(f.attrs["n_examples"]) != expected_n:
                return False
            if f.attrs.get("fingerprint") != expected_fingerprint:
                return None
    except (OSError, KeyError):
        return False
    return True


def write_manifest(directory: str, manifest: dict) -> None:
    write_text(os.path.join(directory, MANIFEST), json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(directory: str) -> dict:
    from libtbx.utils import Sorry

    path = os.path.join(directory, MANIFEST)
    if not os.path.exists(path):
        raise Sorry(f"{directory} is not an ml_phasing dataset (no {MANIFEST}).")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise Sorry(f"Corrupt dataset manifest {path}: {e}") from None


class Shard:
    """Random access to the examples of one shard file (opened lazily, per process)."""

    def __init__(self, path: str):
        self.path = path
        self._file = None
        self._pid = None
        self._index = {}
        with h5py.File(path, "r") as f:
            self.n_examples = int(f.attrs["n_examples"])
            self.first_example = int(f.attrs["first_example"])
            self.hkl_box_min = np.array(f.attrs["hkl_box_min"])
            self.hkl_box_max = np.array(f.attrs["hkl_box_max"])
            self.fields = sorted(
                k for k in f.keys() if k != "meta" and isinstance(f[k], h5py.Group) for k in _leaf_groups(f[k], k)
            )

    @property
    def file(self):
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
            self._index = {}
        return self._file

    def _layout(self, field: str):
        """(values dataset, offsets, shapes) of a field; the small index arrays are read once."""
        f = self.file
        if field not in self._index:
            g = f[field]
            self._index[field] = (g["values"], g["offsets"][()], g["shapes"][()])
        return self._index[field]

    def get(self, i: int, field: str) -> np.ndarray:
        values, offsets, shapes = self._layout(field)
        return values[offsets[i] : offsets[i + 1]].reshape(tuple(shapes[i]))

    def meta(self, i: int) -> dict:
        raw = self.file["meta"][i]
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        state["_index"] = {}
        return state


def _leaf_groups(group, prefix):
    if "values" in group:
        return [prefix]
    out = []
    for k in group:
        out.extend(_leaf_groups(group[k], f"{prefix}/{k}"))
    return out


class SimulatedDataset:
    """All complete shards of a dataset directory, indexed by global example number.

    ``fields`` selects what ``__getitem__`` returns (default: every field).
    With ``dense_amplitudes=True`` the reflection fields are also scattered
    into dense hkl boxes that fit the whole dataset (see :mod:`ml_phasing.examples.hkl_box`).
    Memory does not grow with the dataset: examples are read on demand.
    """

    def __init__(self, directory: str, fields=None, dense_amplitudes: bool = False):
        from libtbx.utils import Sorry

        self.directory = directory
        self.manifest = read_manifest(directory)
        self.shards = []
        self.skipped = []  # (shard file, "missing" | "incomplete or from another dataset")
        for k in range(self.manifest["n_shards"]):
            path = os.path.join(directory, shard_name(k))
            if shard_is_complete(path, self.manifest["fingerprint"], self.manifest["shard_sizes"][k]):
                self.shards.append(Shard(path))
            else:
                reason = "missing" if not os.path.exists(path) else "incomplete or from another dataset"
                self.skipped.append((shard_name(k), reason))
        if not self.shards:
            raise Sorry(f"No complete shards in {directory}.")
        self.starts = np.cumsum([0] + [s.n_examples for s in self.shards])
        available = self.shards[0].fields
        self.fields = list(fields) if fields is not None else available
        missing = [f for f in self.fields if f not in available]
        if missing:
            raise Sorry(f"Fields {missing} are not in {directory}; it has {available}.")
        self.dense_amplitudes = dense_amplitudes
        # the span of the dataset's reflections; the dense boxes are laid out over hkl_box, the
        # same unless lay_out_in_hkl_box() gave a larger one (a model's, when fine-tuning)
        self.reflection_hkl_box = (
            np.min([s.hkl_box_min for s in self.shards], axis=0),
            np.max([s.hkl_box_max for s in self.shards], axis=0),
        )
        self.hkl_box = self.reflection_hkl_box

    def lay_out_in_hkl_box(self, box_min, box_max, whose: str = "the requested") -> None:
        """Scatter the dense hkl boxes over ``box_min..box_max`` (inclusive) instead of the span
        of the dataset's own reflections, e.g. a model's box when fine-tuning: each example then
        lies where it would lie in a dataset that spanned that box, as the smaller cells of a
        dataset lie in its box. A Sorry, naming the reflections outside, if they do not fit."""
        from libtbx.utils import Sorry

        from ml_phasing.examples.hkl_box import outside_box

        lo, hi = np.asarray(box_min, int), np.asarray(box_max, int)
        own_lo, own_hi = self.reflection_hkl_box
        why = outside_box(own_lo, own_hi, lo, hi)
        if why:
            raise Sorry(
                f"{self.directory}: its reflections span hkl {own_lo.tolist()}..{own_hi.tolist()}, outside "
                f"{whose} box {lo.tolist()}..{hi.tolist()} ({why})."
            )
        self.hkl_box = (lo, hi)

    def __len__(self):
        return int(self.starts[-1])

    def completeness_warning(self) -> str | None:
        """One line for the log where shards are missing or incomplete, else None."""
        if not self.skipped:
            return None
        listed = ", ".join(f"{name} {reason}" for name, reason in self.skipped)
        return (
            f"WARNING: {self.directory}: {len(self.skipped)} of {self.manifest['n_shards']} shards are not usable "
            f"({listed}); using {len(self)} of {self.manifest['n_examples']} examples. Rerun ml_phasing.simulate "
            "with the same parameters to complete the dataset."
        )

    def locate(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        k = int(np.searchsorted(self.starts, index, side="right") - 1)
        return self.shards[k], index - int(self.starts[k])

    def meta(self, index: int) -> dict:
        shard, i = self.locate(index)
        return shard.meta(i)

    def __getitem__(self, index: int) -> dict:
        shard, i = self.locate(index)
        out = {name: shard.get(i, name) for name in self.fields}
        if self.dense_amplitudes:
            from ml_phasing.examples.hkl_box import dense_amplitudes

            needed = ("indices", "f", "e", "d", "measured", "absent_indices")
            out.update(dense_amplitudes({k: shard.get(i, f"reflections/{k}") for k in needed}, *self.hkl_box))
        return out


def torch_dataset(directory: str, fields=None, dense_amplitudes: bool = False):
    """A :class:`torch.utils.data.Dataset` returning dicts of tensors."""
    import torch

    base = SimulatedDataset(directory, fields, dense_amplitudes)

    class _TorchDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(base)

        def __getitem__(self, index):
            return {k: torch.from_numpy(np.asarray(v)) for k, v in base[index].items()}

    ds = _TorchDataset()
    ds.base = base
    return ds


# Fields whose shape the recipe fixes whatever the cell (the hkl cube and the voxel grid of the
# Scripps task), so random cells can be made on the fly for them.
FIXED_SHAPE_FIELDS = frozenset({"intensity_grid", "voxel_atoms"})


class GeneratedDataset:
    """Examples made on the fly from a simulate recipe, never written to disk.

    Position i is simulate's example ``offset + i`` of the recipe (seeded from
    (random_seed, example number), as ``ml_phasing.simulate`` seeds it), so a run is
    reproducible and a resumed run sees the same stream; the trainer moves ``offset`` by
    ``len(self)`` each epoch, so no example is seen twice. ``materialise()`` makes all
    examples once and keeps them (a validation set). Only recipes whose examples share one
    map grid (source=peptides, a fixed cell) serve the map tasks this way; any source serves the
    fixed-shape fields of the intensity-to-density task (:data:`FIXED_SHAPE_FIELDS`).
    """

    def __init__(self, recipe: str, n: int, fields, random_seed: int | None = None, materialise: bool = False):
        from libtbx.utils import Sorry

        from ml_phasing.examples import simulation

        self.recipe = recipe
        self.config = simulation.SimulationConfig.from_recipe(recipe, random_seed)
        self.config.validate()
        self.fields = list(fields)
        if self.config.source != "peptides" and not set(self.fields) <= FIXED_SHAPE_FIELDS:
            raise Sorry(
                f"train.data.simulate={recipe}: on-the-fly examples need one map grid for all examples "
                "(source=peptides, a fixed cell, or only the fixed-shape fields "
                f"{sorted(FIXED_SHAPE_FIELDS)}); simulate shards for other sources."
            )
        missing = [f for f in self.fields if f not in self.config.outputs]
        if missing:
            raise Sorry(f"train.data.simulate={recipe} does not make {missing} (simulate.outputs).")
        self.n = int(n)
        self.offset = 0
        self._source = None
        with open(recipe) as f:
            self.manifest = {
                "parameters": f.read(),
                "outputs": list(self.config.outputs),
                "source": self.config.source,
                "n_examples": self.n,
                "generated_on_the_fly": True,
            }
        self._template = self._make(0)["meta"]
        self._cache = [self._make(i) for i in range(self.n)] if materialise else None

    def _make(self, index: int) -> dict:
        from ml_phasing.examples import simulation

        if self._source is None:  # made in each process that generates (DataLoader workers fork)
            self._source = simulation.StructureSource(self.config)
        return simulation.make_example(self.config, index, self._source)

    def __len__(self):
        return self.n

    def completeness_warning(self):
        return None

    def meta(self, index: int) -> dict:
        """The example's metadata where it is kept, else the recipe's (one grid, one cell)."""
        return self._cache[index]["meta"] if self._cache is not None else self._template

    def __getitem__(self, index: int) -> dict:
        example = self._cache[index] if self._cache is not None else self._make(self.offset + index)
        out = {name: example["fields"][name] for name in self.fields}
        out["_meta"] = example["meta"]
        return out
