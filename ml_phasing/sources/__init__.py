"""Where example structures come from: random atoms, peptide fragments, user files."""
