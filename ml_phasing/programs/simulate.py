"""ml_phasing.simulate: synthetic training data for the three seed methods."""

from __future__ import annotations

import os
import time

from libtbx.program_template import ProgramTemplate
from libtbx.utils import Sorry

from ml_phasing import dataset
from ml_phasing.examples import simulation
from ml_phasing.examples.example_files import write_example
from ml_phasing.phil.simulate import phil_str
from ml_phasing.program_support import (
    ResultsMixin,
    make_output_directory,
    log_header,
    logged,
    package_versions,
    progress,
)
from ml_phasing.citations import scope as citation_scope
from ml_phasing.version import __version__


class Program(ResultsMixin, ProgramTemplate):
    program_name = "ml_phasing.simulate"
    version = __version__
    citations = citation_scope("scripps2021", "pan2023", "khaibrakhmanov2025")
    known_article_ids = ["cctbx"]
    description = """
Generate a dataset of simulated crystals and what a network learns from them.

Each example is a crystal structure (random atoms in a space group, a dipeptide
in a P1 cubic cell, or one of your own CIF/PDB files) with, as switched on in
simulate.outputs: reflections to d_min_high (|F|, |E|, true phases, d, and
separate masks for measured / not measured / systematically absent / F000), the
Patterson map (FFT of |F|^2) and the electron density (FFT of F with true
phases) on a grid of spacing d_min/3, a |F|^2 grid on integer hkl, atoms as
Gaussian voxels, and a powder pattern.

Examples go into HDF5 shards in output.directory with a manifest
(dataset.json) that records every parameter and package version. Example i is
made from a seed derived from (random_seed, i): nproc and sharding never change
the bytes, a rerun skips complete shards and redoes incomplete ones, and each
cluster array job can make one shard with shard_index=.

Examples:

  ml_phasing.simulate n_examples=10000 nproc=2 output.directory=random_p21 \\
      random_atoms.space_groups=P21
  ml_phasing.simulate source=peptides peptides.kind=dialanine \\
      peptides.cell_edge=10 d_min_low=1.5 d_min_high=1.5 n_examples=2000
  ml_phasing.simulate source=peptides peptides.kind=dipeptide peptides.cell_edge=12 \\
      peptides.file=1orc.pdb n_examples=500
  ml_phasing.simulate source=structures structures.file=a.cif structures.file=b.cif \\
      n_examples=2 write_examples=2
  ml_phasing.simulate n_examples=100000 n_shards=100 shard_index=7   # one array job

Output files: <directory>/dataset.json, <directory>/shard_NNNNN.h5,
<directory>/simulate.log and, with write_examples=N, <directory>/examples/
example_NNNNN.{mtz,cif|pdb} plus _patterson.ccp4 and _density.ccp4.
An existing dataset made with other parameters is kept unless --overwrite.
"""
    datatypes = ["phil"]
    master_phil_str = phil_str

    def validate(self):
        self.config = simulation.SimulationConfig.from_params(self.params)
        self.config.validate()
        s = self.params.simulate
        self.shard_sizes = simulation.shard_layout(s.n_examples, s.examples_per_shard, s.n_shards)
        if s.shard_index is not None and s.shard_index >= len(self.shard_sizes):
            raise Sorry(
                f"shard_index={s.shard_index} but the dataset has {len(self.shard_sizes)} "
                f"shards (0..{len(self.shard_sizes) - 1})."
            )
        if self.params.output.directory is None:
            raise Sorry("output.directory must be set.")
        # Read the files now, so a bad file stops the run before any work.
        self.source = simulation.StructureSource(self.config)

    def content_phil(self) -> str:
        """The parameters that decide the examples (not where they go or how fast)."""
        working = self.master_phil.format(python_object=self.params)
        text = working.get("simulate").as_str()
        skip = ("n_shards", "shard_index", "examples_per_shard")
        lines = [ln for ln in text.splitlines() if ln.strip().split(" ")[0] not in skip]
        return f"random_seed = {self.params.random_seed}\n" + "\n".join(lines)

    def run(self):
        s = self.params.simulate
        directory = self.params.output.directory
        # Refuse another dataset's directory before the log is opened, so that a refused run
        # leaves that dataset's simulate.log as it was; a rerun of the same dataset appends.
        content = self.content_phil()
        fp = dataset.fingerprint(content)
        same = False
        if os.path.exists(os.path.join(directory, dataset.MANIFEST)):
            same = dataset.read_manifest(directory).get("fingerprint") == fp
            if not same and not self.params.output.overwrite:
                raise Sorry(
                    f"{directory} holds a dataset made with other parameters; choose "
                    "another output.directory or add --overwrite to replace it."
                )
        make_output_directory(directory)
        with logged(self, os.path.join(directory, "simulate.log"), append=same):
            self._run(s, directory, content, fp)

    def _run(self, s, directory, content, fp):
        log_header(self, self.params.random_seed, "cpu (simulation uses no torch device)")
        manifest = {
            "format_version": dataset.FORMAT_VERSION,
            "program": self.program_name,
            "fingerprint": fp,
            "parameters": content,
            "versions": package_versions(),
            "n_examples": s.n_examples,
            "n_shards": len(self.shard_sizes),
            "shard_sizes": self.shard_sizes,
            "shard_files": [dataset.shard_name(k) for k in range(len(self.shard_sizes))],
            "outputs": list(self.config.outputs),
            "source": s.source,
        }
        manifest_path = os.path.join(directory, dataset.MANIFEST)
        overwrite = self.params.output.overwrite
        if overwrite:
            for name in os.listdir(directory):
                if name.startswith("shard_") and name.endswith(".h5"):
                    os.remove(os.path.join(directory, name))
        dataset.write_manifest(directory, manifest)

        wanted = range(len(self.shard_sizes)) if s.shard_index is None else [s.shard_index]
        firsts = [sum(self.shard_sizes[:k]) for k in range(len(self.shard_sizes))]
        todo, skipped = [], []
        for k in wanted:
            path = os.path.join(directory, dataset.shard_name(k))
            state = dataset.shard_is_complete(path, fp, self.shard_sizes[k])
            if state is None and not overwrite:
                raise Sorry(f"{path} belongs to another dataset; add --overwrite to replace it.")
            (skipped if state else todo).append(k)
        if skipped:
            print(f"Keeping {len(skipped)} complete shard(s): {skipped}", file=self.logger)
        n_todo = sum(self.shard_sizes[k] for k in todo)
        print(f"Generating {n_todo} examples in {len(todo)} shard(s) with nproc={self.params.nproc}", file=self.logger)
        t0 = time.time()
        compression = None if self.params.output.compression == "none" else self.params.output.compression
        stream = simulation.ExampleStream(self.config, self.params.nproc)
        try:
            with progress(total=n_todo, desc="simulate", unit="ex") as bar:
                for k in todo:
                    path = os.path.join(directory, dataset.shard_name(k))
                    attrs = {"fingerprint": fp, "shard_index": k, "ml_phasing_version": self.version}
                    try:
                        simulation.write_shard(path, firsts[k], self.shard_sizes[k], stream, attrs, bar, compression)
                    except OSError as e:
                        raise Sorry(
                            f"Cannot write {path}: {e.strerror or e}. The shard was "
                            "discarded; rerun the same command to resume."
                        ) from None
                    print(f"  wrote {path}", file=self.logger)
        finally:
            stream.close()
        elapsed = time.time() - t0
        rate = n_todo / elapsed if elapsed > 0 and n_todo else 0.0
        print(f"{n_todo} examples in {elapsed:.1f} s ({rate:.1f} examples/s)", file=self.logger)

        examples_written = []
        if self.params.output.write_examples:
            n = min(self.params.output.write_examples, s.n_examples)
            out_dir = os.path.join(directory, "examples")
            for i in range(n):
                ex = simulation.make_example(self.config, i, self.source, keep_objects=True)
                examples_written += write_example(out_dir, f"example_{i:05d}", ex)
            print(f"Wrote {len(examples_written)} example files to {out_dir}", file=self.logger)
        self.result = {
            "directory": os.path.abspath(directory),
            "manifest": os.path.abspath(manifest_path),
            "n_examples": s.n_examples,
            "shards_written": todo,
            "shards_kept": skipped,
            "examples_per_second": round(rate, 2),
            "example_files": examples_written,
            "fingerprint": fp,
        }
