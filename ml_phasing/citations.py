"""Citations printed by each program's ``--citations`` (libtbx citation PHIL; cctbx is added by iotbx)."""

import libtbx.phil

_ARTICLES = {
    "pan2023": """
citation {
  article_id = pan2023
  authors = Pan T, Jin S, Miller MD, Kyrillidis A, Phillips GN Jr
  title = A deep learning solution for crystallographic structure determination
  journal = IUCrJ
  volume = 10
  pages = 487-496
  year = 2023
  doi_id = "10.1107/S2052252523004293"
}""",
    "shelxd": """
citation {
  article_id = shelxd
  authors = Schneider TR, Sheldrick GM
  title = Substructure solution with SHELXD
  journal = Acta Cryst. D
  volume = 58
  pages = 1772-1779
  year = 2002
  doi_id = "10.1107/S0907444902011678"
}""",
    "charge_flipping": """
citation {
  article_id = charge_flipping
  authors = Oszlanyi G, Suto A
  title = Ab initio structure solution by charge flipping
  journal = Acta Cryst. A
  volume = 60
  pages = 134-141
  year = 2004
  doi_id = "10.1107/S0108767303027569"
}""",
    "sigmaa": """
citation {
  article_id = sigmaa
  authors = Read RJ
  title = Improved Fourier coefficients for maps using phases from partial structures with errors
  journal = Acta Cryst. A
  volume = 42
  pages = 140-149
  year = 1986
  doi_id = "10.1107/S0108767386099622"
}""",
    "khaibrakhmanov2025": """
citation {
  article_id = khaibrakhmanov2025
  authors = Khaibrakhmanov A
  title = Resolution extension of X-ray diffraction data with neural networks (thesis)
  journal = Lomonosov Moscow State University
  year = 2025
}""",
    "scripps2021": """
citation {
  article_id = scripps2021
  authors = Scripps, Cumby J, Seth
  title = Deep learning of diffraction patterns to electron density (poster and report)
  journal = University of Edinburgh
  year = 2021
}""",
}


def scope(*ids):
    """A libtbx.phil scope of the named citations (what ProgramTemplate.citations holds)."""
    return libtbx.phil.parse("\n".join(_ARTICLES[i] for i in ids))
