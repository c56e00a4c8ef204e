"""PHIL parameters of ml_phasing.evaluate."""

phil_str = """
reference {
  file = None
    .type = path
    .help = "The truth: an MTZ with true phases (e.g. FC,PHIC), a model (PDB, mmCIF \
             or small-molecule CIF; structure factors are computed at the \
             prediction's resolution), or a CCP4 map."
  labels = None
    .type = str
    .help = "Reference columns, e.g. FC,PHIC or F,PHI (default: the obvious ones)."
}
prediction {
  file = None
    .type = path
    .multiple = True
    .help = "Predictions to judge: MTZ (map coefficients, phases with FOM, or amplitudes) \
             or CCP4 maps, or directories of them. Repeat for several."
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
symmetry {
  include scope ml_phasing.phil.common.symmetry_phil_scope
}
d_min = None
  .type = float(value_min=0.3)
  .help = "Compare to this resolution (Angstrom); default all common reflections."
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
}
output {
  plots = True
    .type = bool
    .help = "Write PNG figures."
}
"""
