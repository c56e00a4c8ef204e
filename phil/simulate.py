"""PHIL parameters of ml_phasing.simulate."""

from ml_phasing.sources.residue_geometry import AMINO_ACIDS

phil_str = """
include scope ml_phasing.phil.common.phil_scope
simulate {
  source = *random_atoms peptides structures
    .type = choice
    .help = "Where structures come from: random atoms in a space group \
             (Khaibrakhmanov), dipeptide fragments in P1 cubic cells (Pan et al.), \
             or the user's own structure files."
  n_examples = 1000
    .type = int(value_min=1)
    .help = "Number of examples in the dataset."
  examples_per_shard = 1000
    .type = int(value_min=1)
    .help = "Examples per HDF5 shard file (ignored when n_shards is set)."
  n_shards = None
    .type = int(value_min=1)
    .help = "Split the dataset into this many shards (default: from examples_per_shard)."
  shard_index = None
    .type = int(value_min=0)
    .help = "Generate only this shard (0-based), e.g. one cluster array job each. \
             Any shard gives the same bytes however it is produced."
  d_min_low = 1.5
    .type = float(value_min=0.3)
    .help = "Resolution (Angstrom) of the 'measured' data."
  d_min_high = 1.0
    .type = float(value_min=0.3)
    .help = "Resolution (Angstrom) of the complete data (the extension target)."
  random_atoms {
    space_groups = P1 P-1 P21 C2 P21/c P212121
      .type = strings
      .help = "Space groups drawn uniformly."
    elements = C N O Cl Br
      .type = strings
      .help = "Elements to draw atoms from."
    element_weights = 6 2 2 1 1
      .type = floats(value_min=0)
      .help = "Relative probability of each element (same order as elements)."
    n_atoms_min = 10
      .type = int(value_min=1)
      .help = "Fewest atoms in the asymmetric unit."
    n_atoms_max = 30
      .type = int(value_min=1)
      .help = "Most atoms in the asymmetric unit."
    volume_per_atom_min = 14
      .type = float(value_min=1)
      .help = "Smallest unit-cell volume per atom (Angstrom^3)."
    volume_per_atom_max = 22
      .type = float(value_min=1)
      .help = "Largest unit-cell volume per atom (Angstrom^3)."
    min_distance = 1.2
      .type = float(value_min=0)
      .help = "Minimum interatomic distance (Angstrom)."
    b_iso_min = 1.0
      .type = float(value_min=0)
      .help = "Smallest isotropic B (Angstrom^2)."
    b_iso_max = 5.0
      .type = float(value_min=0)
      .help = "Largest isotropic B (Angstrom^2)."
  }
  peptides {
    kind = *dialanine dipeptide
      .type = choice
      .help = "dialanine (files truncated at CB) or dipeptides of the listed residues."
    residues = %s
      .type = strings
      .help = "Residue types allowed in dipeptides (three-letter codes)."
    file = None
      .type = path
      .multiple = True
      .help = "PDB/mmCIF files to cut residue pairs from. Without files, \
               fragments are built from ideal geometry with random torsions."
    cell_edge = 10.0
      .type = float(value_min=2)
      .help = "Edge of the P1 cubic cell (Angstrom)."
    min_image_distance = 2.5
      .type = float(value_min=0)
      .help = "Reject fragments closer than this to their periodic images (Angstrom)."
    random_rotation = True
      .type = bool
      .help = "Give each fragment a random proper rotation before placing it."
    b_iso_min = 5.0
      .type = float(value_min=0)
      .help = "Smallest isotropic B (Angstrom^2)."
    b_iso_max = 15.0
      .type = float(value_min=0)
      .help = "Largest isotropic B (Angstrom^2)."
    b_iso_distribution = *uniform pdb
      .type = choice
      .help = "uniform: every atom's B uniform in b_iso_min..b_iso_max. pdb: one B per \
               fragment drawn from the mean B of residue pairs in real PDB entries \
               (quantiles shipped with ml_phasing), clipped to b_iso_min..b_iso_max, then \
               spread per atom by b_iso_spread."
    b_iso_spread = 0.1
      .type = float(value_min=0, value_max=1)
      .help = "With b_iso_distribution=pdb: relative standard deviation of each main-chain \
               atom's B around the fragment's B; side-chain atoms get 2.5 times as much."
  }
  structures {
    file = None
      .type = path
      .multiple = True
      .help = "Small-molecule CIF or PDB/mmCIF files; example i uses file i mod n_files."
    remove_hydrogens = True
      .type = bool
      .help = "Drop H and D atoms."
    b_jitter = 0.0
      .type = float(value_min=0)
      .help = "Augmentation: scale every atom's ADPs (isotropic and anisotropic) by one \
               factor per example, exp(b_jitter * z) with z standard normal (log-normal, \
               median 1, relative sd about b_jitter). 0: each atom keeps the file's ADPs."
    site_jitter = 0.0
      .type = float(value_min=0)
      .help = "Augmentation: move every atom by a Gaussian displacement of this sd \
               (Angstrom) along each Cartesian axis, independently per example; atoms on \
               special positions stay on them. 0: the file's positions."
  }
  outputs {
    amplitudes = True
      .type = bool
      .help = "Reflections to d_min_high: |F|, |E|, true phases, d, masks."
    patterson = True
      .type = bool
      .help = "Patterson map (FFT of |F|^2, no F000)."
    density = True
      .type = bool
      .help = "Electron density (FFT of F with true phases, no F000)."
    intensity_grid = False
      .type = bool
      .help = "|F|^2 on the integer hkl cube (Scripps)."
    voxel_atoms = False
      .type = bool
      .help = "Atoms as Gaussian-smeared voxels (Scripps)."
    powder = False
      .type = bool
      .help = "One-dimensional powder pattern."
  }
  noise {
    relative_sigma = 0.0
      .type = float(value_min=0)
      .help = "Gaussian noise on the amplitudes the Patterson map is computed from (the \
               network's input; the density target stays exact): sigma(|F|) = \
               relative_sigma * |F| + floor * mean |F| of the resolution shell."
    floor = 0.0
      .type = float(value_min=0)
      .help = "The constant part of sigma(|F|), as a fraction of the shell's mean |F| \
               (weak reflections are relatively noisier)."
  }
  maps {
    d_min = None
      .type = float(value_min=0.3)
      .help = "Resolution of the Patterson and density maps (default d_min_low)."
    grid_step = None
      .type = float(value_min=0.05)
      .help = "Grid spacing (Angstrom), default maps.d_min/3; the grid is rounded up \
               to a size the space group and FFT accept."
    scale_to_unit = True
      .type = bool
      .help = "Divide each map by its max |value| (to [-1, 1], Pan et al.); the factor \
               is kept in the metadata so absolute values can be recovered."
  }
  intensity_grid {
    h_max = 10
      .type = int(value_min=1)
      .help = "The cube runs over -h_max..h_max in h, k and l."
    form_factor = *atomic_number xray
      .type = choice
      .help = "atomic_number: point atoms of weight Z (Scripps); xray: real form factors and B."
  }
  voxel_atoms {
    frame = *fractional cartesian
      .type = choice
      .help = "Grid over the unit cell (fractional, periodic) or a Cartesian cube that \
               holds the unit cell (cartesian, not periodic)."
    grid_points = 32
      .type = int(value_min=4)
      .help = "Voxels along each edge."
    sigma = 0.5
      .type = float(value_min=0.01)
      .help = "Gaussian width of an atom (Angstrom)."
    weight = *atomic_number unit
      .type = choice
      .help = "Peak weight of each atom."
    box_edge = None
      .type = float(value_min=1)
      .help = "Edge of the Cartesian cube (Angstrom), default the longest side of the unit \
               cell's bounding box; the cube starts at the box's lowest corner."
  }
  powder {
    wavelength = 1.5406
      .type = float(value_min=0.1)
      .help = "X-ray wavelength (Angstrom), default Cu K-alpha1."
    two_theta_min = 5.0
      .type = float(value_min=0)
      .help = "First 2theta (degrees)."
    two_theta_max = 90.0
      .type = float(value_max=179)
      .help = "Last 2theta (degrees)."
    two_theta_step = 0.02
      .type = float(value_min=0.001)
      .help = "2theta step (degrees)."
    u = 0.004
      .type = float
      .help = "Caglioti U (degrees^2)."
    v = -0.002
      .type = float
      .help = "Caglioti V (degrees^2)."
    w = 0.006
      .type = float
      .help = "Caglioti W (degrees^2)."
    eta = 0.5
      .type = float(value_min=0, value_max=1)
      .help = "Lorentzian fraction of the pseudo-Voigt."
    asymmetry_1 = 0.02
      .type = float
      .help = "Berar-Baldinozzi axial-divergence parameter P1."
    asymmetry_2 = 0.0
      .type = float
      .help = "Berar-Baldinozzi axial-divergence parameter P2."
  }
}
output {
  directory = simulated
    .type = path
    .help = "Dataset directory (manifest dataset.json, shard_NNNNN.h5, log)."
  compression = *none gzip lzf
    .type = choice
    .help = "HDF5 compression of the shards: none is fastest; gzip is smallest \
             (maps shrink little); lzf is in between."
  write_examples = 0
    .type = int(value_min=0)
    .help = "Also write the first N examples as MTZ (F; FC/PHIC), CCP4 maps and \
             a structure file under <directory>/examples/."
}
""" % " ".join(AMINO_ACIDS)
