"""The phasing engine: any phase start -> a refined atomic structure that explains |Fobs|.

Stages, in pipeline order:

* :mod:`~ml_phasing.phasing.composition`: what the asymmetric unit holds;
* :mod:`~ml_phasing.phasing.starts`: phase starts (network, extension, charge flipping,
  random, the user's phases);
* :mod:`~ml_phasing.phasing.dual_space`: one dual-space trajectory (peaks -> atoms ->
  random omission -> least squares -> phases), with completion cycles;
* :mod:`~ml_phasing.phasing.figures_of_merit`: R1, CC (SHELXD), Patterson CC, Sim weights;
* :mod:`~ml_phasing.phasing.engine`: multi-start runs, early stop, the solved verdict.
"""
