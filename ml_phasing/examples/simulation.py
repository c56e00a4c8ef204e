"""Turn a seed into a training example, and examples into a sharded dataset.

:func:`make_example` is a pure function of (configuration, example index): the
example's seed is derived from ``(random_seed, index)``, so shards can be made
in any order, in any process, on any machine, and give the same bytes.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
from cctbx.eltbx import tiny_pse
from libtbx.utils import Sorry

from ml_phasing import dataset, worker_pool
from ml_phasing.examples import observables
from ml_phasing.examples.powder import PowderConfig
from ml_phasing.examples.powder import pattern as powder_pattern
from ml_phasing.examples.seeding import example_seed, seed_everything
from ml_phasing.sources import peptides, random_atoms, structure_files


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that decides an example's content (a picklable view of the PHIL)."""

    random_seed: int
    source: str
    d_min_low: float
    d_min_high: float
    random_atoms: random_atoms.RandomAtomsConfig
    peptides: peptides.PeptidesConfig
    structure_files: tuple
    remove_hydrogens: bool
    outputs: tuple
    map_d_min: float
    grid_step: float | None
    scale_maps: bool
    h_max: int
    form_factor: str
    voxel: tuple
    powder: PowderConfig
    noise: tuple = (0.0, 0.0)  # (relative_sigma, floor) on the Patterson's amplitudes
    structure_jitter: tuple = (0.0, 0.0)  # source=structures: (b_jitter, site_jitter in A)

    @classmethod
    def from_recipe(cls, recipe: str, seed: int, amplitudes_only: bool = False):
        """The config of a recipe (.eff, e.g. phil/dialanine_10A_simulate.eff) with another
        random seed (None: the recipe's), as benchmarks and tests make held-out data; ``amplitudes_only`` skips the
        Patterson and density maps."""
        from libtbx import phil

        from ml_phasing.phil.simulate import phil_str

        master = phil.parse(phil_str, process_includes=True)
        params = master.fetch(sources=[phil.parse(file_name=recipe)]).extract()
        if seed is not None:
            params.random_seed = seed
        if amplitudes_only:
            params.simulate.outputs.patterson = params.simulate.outputs.density = False
            params.simulate.outputs.amplitudes = True
        return cls.from_params(params)

    @classmethod
    def from_params(cls, params):
        s = params.simulate
        outputs = tuple(
            k
            for k in ("amplitudes", "patterson", "density", "intensity_grid", "voxel_atoms", "powder")
            if getattr(s.outputs, k)
        )
        v = s.voxel_atoms
        return cls(
            random_seed=params.random_seed,
            source=s.source,
            d_min_low=s.d_min_low,
            d_min_high=s.d_min_high,
            random_atoms=random_atoms.RandomAtomsConfig.from_phil(s.random_atoms),
            peptides=peptides.PeptidesConfig.from_phil(s.peptides),
            structure_files=tuple(s.structures.file or ()),
            remove_hydrogens=s.structures.remove_hydrogens,
            outputs=outputs,
            map_d_min=s.maps.d_min or s.d_min_low,
            grid_step=s.maps.grid_step,
            scale_maps=s.maps.scale_to_unit,
            h_max=s.intensity_grid.h_max,
            form_factor=s.intensity_grid.form_factor,
            voxel=(v.frame, v.grid_points, v.sigma, v.weight, v.box_edge),
            powder=PowderConfig.from_phil(s.powder),
            noise=(s.noise.relative_sigma, s.noise.floor),
            structure_jitter=(s.structures.b_jitter, s.structures.site_jitter),
        )

    def validate(self):
        if self.d_min_high > self.d_min_low:
            raise Sorry(f"d_min_high ({self.d_min_high} A) must not be coarser than d_min_low ({self.d_min_low} A).")
        if not self.outputs:
            raise Sorry("Every output is switched off (simulate.outputs); nothing to simulate.")
        if self.source == "random_atoms":
            self.random_atoms.validate()
        elif self.source == "peptides":
            self.peptides.validate()
        elif not self.structure_files:
            raise Sorry("source=structures needs at least one structures.file=...")
        if self.grid_step is not None and self.grid_step > self.map_d_min / 2:
            raise Sorry(
                f"maps.grid_step={self.grid_step} A is coarser than half the map resolution "
                f"({self.map_d_min / 2:.3f} A): the maps would be aliased."
            )
        if self.powder.two_theta_min >= self.powder.two_theta_max:
            raise Sorry("powder.two_theta_min must be smaller than two_theta_max.")


class StructureSource:
    """Makes the structure of example i; file-backed sources are read once per process."""

    def __init__(self, config: SimulationConfig):
        self.config = config
        self.library = None
        self.structures = None
        if config.source == "peptides" and config.peptides.files:
            self.library = peptides.FragmentLibrary(
                config.peptides.files, config.peptides.kind, config.peptides.residues
            )
        elif config.source == "structures":
            self.structures = [
                structure_files.read_structure(str(p), config.remove_hydrogens) for p in config.structure_files
            ]

    def __call__(self, index: int, rng):
        c = self.config
        if c.source == "random_atoms":
            return random_atoms.make_structure(c.random_atoms, rng)
        if c.source == "peptides":
            return peptides.make_structure(c.peptides, rng, self.library)
        k = index % len(self.structures)
        xs = self.structures[k].deep_copy_scatterers()
        meta = {"source": "structures", "file": os.path.basename(str(c.structure_files[k]))}
        if any(c.structure_jitter):  # no draws without it: examples stay as they were
            meta.update(structure_files.jitter(xs, rng, *c.structure_jitter))
        return xs, meta


@functools.lru_cache(maxsize=None)
def atomic_number(scattering_type: str) -> int:
    return tiny_pse.table(scattering_type).atomic_number()


def composition(xs) -> dict:
    """Element counts in the unit cell (occupancy-weighted, special positions counted right)."""
    counts = {}
    for sc in xs.scatterers():
        m = sc.multiplicity()
        counts[sc.scattering_type] = counts.get(sc.scattering_type, 0.0) + sc.occupancy * m
    return {k: round(v, 4) for k, v in sorted(counts.items())}


def make_example(config: SimulationConfig, index: int, source: StructureSource, keep_objects: bool = False) -> dict:
    """Example ``index``: its fields (numpy arrays) and metadata."""
    seed = example_seed(config.random_seed, index)
    rng = seed_everything(seed)
    xs, source_meta = source(index, rng)
    sgi = xs.space_group_info()
    sg_type = sgi.type()
    meta = {
        "index": index,
        "seed": seed,
        **source_meta,
        "space_group": str(sgi),
        "space_group_number": sg_type.number(),
        "hall_symbol": sg_type.hall_symbol(),
        "unit_cell": [round(x, 6) for x in xs.unit_cell().parameters()],
        "n_atoms_asu": xs.scatterers().size(),
        "composition_unit_cell": composition(xs),
        "f000": round(float(xs.f_000()), 6),
        "d_min_low": config.d_min_low,
        "d_min_high": config.d_min_high,
    }
    fields = {
        "atoms/sites_frac": xs.sites_frac().as_numpy_array().reshape(-1, 3),
        "atoms/atomic_number": np.array([atomic_number(sc.scattering_type) for sc in xs.scatterers()], np.int16),
        "atoms/b_iso": np.array([sc.b_iso() for sc in xs.scatterers()], np.float32),
        "atoms/occupancy": np.array([sc.occupancy for sc in xs.scatterers()], np.float32),
    }
    out = {"meta": meta, "fields": fields}
    f_calc_high = None
    if "amplitudes" in config.outputs:
        rec, f_calc_high = observables.amplitude_record(xs, config.d_min_low, config.d_min_high)
        for k, v in rec.items():
            fields[f"reflections/{k}"] = v
    if "patterson" in config.outputs or "density" in config.outputs:
        if f_calc_high is not None and config.map_d_min >= config.d_min_high:
            f_map = f_calc_high.resolution_filter(d_min=config.map_d_min)  # no second F calc
        else:
            f_map = observables.structure_factors(xs, config.map_d_min)
        gridding = observables.crystal_gridding(xs, config.map_d_min, config.grid_step)
        meta["map_d_min"] = config.map_d_min
        meta["map_grid"] = list(gridding.n_real())
        maps = {}
        if "patterson" in config.outputs:
            f_patt = f_map.as_amplitude_array()
            if any(config.noise):
                f_patt = observables.noisy_amplitudes(f_patt, *config.noise, np.random.default_rng([seed, 1]))
                meta["noise"] = list(config.noise)
            maps["patterson"] = observables.patterson_map(f_patt, gridding)
        if "density" in config.outputs:
            maps["density"] = observables.density_map(f_map, gridding)
        for name, m in maps.items():
            if config.scale_maps:
                m, factor = observables.scale_to_unit(m)
            else:
                m, factor = m.astype(np.float32), 1.0
            fields[name] = m
            meta[f"{name}_scale"] = factor
        if keep_objects:
            out["objects"] = {"f_map": f_map, "gridding": gridding}
    if "intensity_grid" in config.outputs:
        fields["intensity_grid"] = observables.intensity_grid(xs, config.h_max, config.form_factor)
    if "voxel_atoms" in config.outputs:
        frame, n, sigma, weight, edge = config.voxel
        fields["voxel_atoms"] = observables.voxel_atoms(xs, n, sigma, frame, weight, edge)
    if "powder" in config.outputs:
        fields["powder"] = powder_pattern(xs, config.powder)
    if keep_objects:
        out.setdefault("objects", {}).update({"xray_structure": xs, "f_calc_high": f_calc_high})
    return out


def shard_layout(n_examples: int, examples_per_shard: int, n_shards: int | None) -> list[int]:
    """Sizes of the shards: equal blocks, the last one possibly shorter."""
    if n_shards is None:
        n_shards = math.ceil(n_examples / examples_per_shard)
    n_shards = min(n_shards, n_examples)
    per = math.ceil(n_examples / n_shards)
    sizes = [min(per, n_examples - k * per) for k in range(n_shards)]
    return [s for s in sizes if s > 0]


# Worker-process state (set by the pool initializer, inherited by fork).
_WORKER = {}


def _init_worker(config):
    _WORKER["config"] = config
    _WORKER["source"] = StructureSource(config)


def _work(index):
    return make_example(_WORKER["config"], index, _WORKER["source"])


def _work_chunk(bounds):
    """Examples [first, last) in one task (fewer round trips than one task per example)."""
    return [_work(i) for i in range(*bounds)]


class ExampleStream:
    """Examples [start, stop) in order, computed in ``nproc`` processes."""

    def __init__(self, config: SimulationConfig, nproc: int):
        self.config = config
        self.nproc = nproc
        self.pool = None
        if nproc > 1:
            self.pool = worker_pool.fork_pool(nproc, initializer=_init_worker, initargs=(config,))
        else:
            _init_worker(config)

    def __call__(self, start: int, stop: int):
        if self.pool is None:
            return (_work(i) for i in range(start, stop))
        chunks = ((i, min(i + 8, stop)) for i in range(start, stop, 8))
        results = worker_pool.ordered(self.pool, _work_chunk, chunks, in_flight=2 * self.nproc)
        return (ex for chunk in results for ex in chunk)

    def close(self):
        if self.pool is not None:
            worker_pool.close(self.pool)


def write_shard(
    path: str, first: int, size: int, stream: ExampleStream, attrs: dict, bar=None, compression: str | None = None
):
    """Generate examples [first, first+size) into one shard file, atomically."""
    writer = dataset.ShardWriter(path, {**attrs, "first_example": first}, compression)
    try:
        for example in stream(first, first + size):
            writer.append(example)
            if bar is not None:
                bar.update(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
