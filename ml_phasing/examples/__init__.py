"""From a structure to one training example: simulation, the physics (cctbx), dense hkl
boxes, powder patterns, per-example seeds and example files."""
