"""PHIL parameters of ml_phasing.evaluate."""

phil_str = """
reference {
  file = None
    .type = path
    .help = "The truth: an MTZ with true phases (e.g. FC,PHIC), a model (PDB, mmCIF \
             or small-molecule CIF; structure factors are computed at the \
             prediction's resolution), or a CCP4 map. The first positional file is \
             the reference too. A directory pairs its files with the predictions \
             by name (see prediction.file)."
  labels = None
    .type = str
    .help = "Reference columns, e.g. FC,PHIC or F,PHI (default: the obvious ones)."
  pattern = "*.mtz"
    .type = str
    .help = "With reference.file=DIRECTORY: which of its files are references (a \
             shell pattern, e.g. *.mtz, *.cif or *_density.ccp4)."
  remove_hydrogens = True
    .type = bool
    .help = "Leave H and D atoms out of a model reference (structure factors, atom \
             matching, interatomic vectors). A map rarely shows them, and they \
             multiply the cost of atom matching; the log says how many were removed."
}
prediction {
  file = None
    .type = path
    .multiple = True
    .help = "Predictions to judge: MTZ (map coefficients, phases with FOM, or amplitudes) \
             or CCP4 maps, or directories of them. Repeat for several. Positional \
             files after the reference are predictions too. With a reference \
             directory, each prediction is paired with the reference whose file \
             name stem its own stem starts with, followed by _, -, . or nothing \
             (example_00012_p2d.mtz with example_00012.mtz; the longest such stem \
             wins); unpaired files are listed."
  labels = None
    .type = str
    .help = "Prediction columns: map coefficients (FWT,PHWT) or amplitudes (F_EXT,SIGF_EXT)."
  phase_label = None
    .type = str
    .help = "A phase column (e.g. PHIB) to combine with the reference amplitudes."
  fom_label = None
    .type = str
    .help = "Figure-of-merit column (e.g. FOM) for weighted phase errors."
  predicted_flag_label = None
    .type = str
    .help = "Column flagging predicted (not measured) reflections, e.g. PREDICTED; the \
             amplitude R factor is then computed on those only."
}
pairs = None
  .type = path
  .help = "A list file of pairs to judge: one 'reference prediction' pair per line \
           (two paths separated by white space; # starts a comment; relative paths \
           are relative to the list file's folder). Replaces reference.file and \
           prediction.file."
symmetry {
  include scope ml_phasing.phil.common.symmetry_phil_scope
}
d_min = None
  .type = float(value_min=0.3)
  .help = "Compare to this resolution (Angstrom); default the common resolution of \
           the reference and the prediction (the lower of the two; the log says so \
           when they differ)."
n_bins = 10
  .type = int(value_min=1)
  .help = "Resolution shells (equal volumes in reciprocal space)."
search_origin = True
  .type = bool
  .help = "Search the origin shifts the space group allows (cphasematch does)."
search_hand = True
  .type = bool
  .help = "Also try the inverted hand."
fit_scale = False
  .type = bool
  .help = "Scale predicted amplitudes to the reference before the R factor."
atoms {
  n_peaks = None
    .type = int(value_min=1)
    .help = "Map peaks to match to the atoms (default: atoms in the reference model)."
  tolerance = 0.5
    .type = float(value_min=0)
    .help = "Distance (Angstrom) within which a peak matches an atom."
  max_atoms = 100
    .type = int(value_min=1)
    .help = "Atom matching (Euclidean model matching, whose time grows as the cube \
             of the number of atoms: 16 s for 100 atoms, 130 s for 200) is done for \
             model references with at most this many atoms in the asymmetric unit \
             (after H removal); larger models skip it with a note."
}
output {
  plots = True
    .type = bool
    .help = "Write PNG figures."
}
"""
