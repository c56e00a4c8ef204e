"""Ideal amino-acid geometry and a torsion-driven builder for dipeptides.

Bond lengths and angles are rounded Engh & Huber (1991) values, the same
numbers used by PeptideBuilder (Tien et al. 2013, PeerJ 1:e80); atoms are placed
by the natural extension reference frame (NeRF; Parsons et al. 2005, J Comput
Chem 26:1063). Torsions are drawn from simple rotamer and Ramachandran mixtures
(centres after Lovell et al. 2000, Proteins 40:389) so fragments look like
those cut from the PDB. Only heavy atoms are built; L-amino acids only.
"""

from __future__ import annotations

import math

import numpy as np

# Backbone (Engh & Huber): bond lengths in Angstrom, angles in degrees.
N_CA, CA_C, C_N, C_O = 1.458, 1.525, 1.329, 1.231
ANG_N_CA_C, ANG_CA_C_N, ANG_C_N_CA, ANG_CA_C_O = 111.2, 116.2, 121.7, 120.5
CA_CB, ANG_N_CA_CB, TORSION_C_N_CA_CB = 1.530, 110.5, -122.69

# Side chains: (atom, (ref1, ref2, ref3), bond, angle ref2-ref3-atom, torsion).
# The torsion is a number (fixed) or ("chiN", offset): chi N plus an offset.
SIDE_CHAINS = {
    "GLY": [],
    "ALA": [],
    "SER": [("OG", ("N", "CA", "CB"), 1.417, 110.8, ("chi1", 0))],
    "CYS": [("SG", ("N", "CA", "CB"), 1.808, 113.8, ("chi1", 0))],
    "VAL": [
        ("CG1", ("N", "CA", "CB"), 1.527, 110.7, ("chi1", 0)),
        ("CG2", ("N", "CA", "CB"), 1.527, 110.4, ("chi1", 122.0)),
    ],
    "THR": [
        ("OG1", ("N", "CA", "CB"), 1.433, 109.2, ("chi1", 0)),
        ("CG2", ("N", "CA", "CB"), 1.521, 111.1, ("chi1", -120.0)),
    ],
    "ILE": [
        ("CG1", ("N", "CA", "CB"), 1.530, 110.4, ("chi1", 0)),
        ("CG2", ("N", "CA", "CB"), 1.521, 110.5, ("chi1", -122.0)),
        ("CD1", ("CA", "CB", "CG1"), 1.513, 113.8, ("chi2", 0)),
    ],
    "LEU": [
        ("CG", ("N", "CA", "CB"), 1.530, 116.3, ("chi1", 0)),
        ("CD1", ("CA", "CB", "CG"), 1.521, 110.7, ("chi2", 0)),
        ("CD2", ("CA", "CB", "CG"), 1.521, 110.7, ("chi2", 123.0)),
    ],
    "MET": [
        ("CG", ("N", "CA", "CB"), 1.520, 113.7, ("chi1", 0)),
        ("SD", ("CA", "CB", "CG"), 1.803, 112.7, ("chi2", 0)),
        ("CE", ("CB", "CG", "SD"), 1.791, 100.6, ("chi3", 0)),
    ],
    "PRO": [
        ("CG", ("N", "CA", "CB"), 1.495, 104.5, ("chi1", 0)),
        ("CD", ("CA", "CB", "CG"), 1.502, 105.5, ("chi2", 0)),
    ],
    "PHE": [
        ("CG", ("N", "CA", "CB"), 1.502, 113.8, ("chi1", 0)),
        ("CD1", ("CA", "CB", "CG"), 1.389, 120.7, ("chi2", 0)),
        ("CD2", ("CA", "CB", "CG"), 1.389, 120.7, ("chi2", 180.0)),
        ("CE1", ("CB", "CG", "CD1"), 1.389, 120.7, 180.0),
        ("CE2", ("CB", "CG", "CD2"), 1.389, 120.7, 180.0),
        ("CZ", ("CG", "CD1", "CE1"), 1.389, 120.0, 0.0),
    ],
    "TYR": [
        ("CG", ("N", "CA", "CB"), 1.512, 114.0, ("chi1", 0)),
        ("CD1", ("CA", "CB", "CG"), 1.389, 121.0, ("chi2", 0)),
        ("CD2", ("CA", "CB", "CG"), 1.389, 121.0, ("chi2", 180.0)),
        ("CE1", ("CB", "CG", "CD1"), 1.382, 121.0, 180.0),
        ("CE2", ("CB", "CG", "CD2"), 1.382, 121.0, 180.0),
        ("CZ", ("CG", "CD1", "CE1"), 1.378, 120.0, 0.0),
        ("OH", ("CD1", "CE1", "CZ"), 1.376, 120.0, 180.0),
    ],
    "TRP": [
        ("CG", ("N", "CA", "CB"), 1.498, 114.1, ("chi1", 0)),
        ("CD1", ("CA", "CB", "CG"), 1.365, 127.1, ("chi2", 0)),
        ("CD2", ("CA", "CB", "CG"), 1.433, 126.6, ("chi2", 180.0)),
        ("NE1", ("CB", "CG", "CD1"), 1.374, 110.2, 180.0),
        ("CE2", ("CB", "CG", "CD2"), 1.409, 107.2, 180.0),
        ("CE3", ("CB", "CG", "CD2"), 1.398, 133.9, 0.0),
        ("CZ2", ("CG", "CD2", "CE2"), 1.394, 122.4, 180.0),
        ("CZ3", ("CG", "CD2", "CE3"), 1.382, 118.7, 180.0),
        ("CH2", ("CD2", "CE2", "CZ2"), 1.368, 117.5, 0.0),
    ],
    "HIS": [
        ("CG", ("N", "CA", "CB"), 1.497, 113.7, ("chi1", 0)),
        ("ND1", ("CA", "CB", "CG"), 1.378, 122.7, ("chi2", 0)),
        ("CD2", ("CA", "CB", "CG"), 1.354, 131.0, ("chi2", 180.0)),
        ("CE1", ("CB", "CG", "ND1"), 1.321, 109.0, 180.0),
        ("NE2", ("CB", "CG", "CD2"), 1.374, 107.0, 180.0),
    ],
    "ASP": [
        ("CG", ("N", "CA", "CB"), 1.516, 112.6, ("chi1", 0)),
        ("OD1", ("CA", "CB", "CG"), 1.249, 118.4, ("chi2", 0)),
        ("OD2", ("CA", "CB", "CG"), 1.249, 118.4, ("chi2", 180.0)),
    ],
    "ASN": [
        ("CG", ("N", "CA", "CB"), 1.516, 112.6, ("chi1", 0)),
        ("OD1", ("CA", "CB", "CG"), 1.231, 120.8, ("chi2", 0)),
        ("ND2", ("CA", "CB", "CG"), 1.328, 116.4, ("chi2", 180.0)),
    ],
    "GLU": [
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, ("chi1", 0)),
        ("CD", ("CA", "CB", "CG"), 1.516, 112.6, ("chi2", 0)),
        ("OE1", ("CB", "CG", "CD"), 1.249, 118.4, ("chi3", 0)),
        ("OE2", ("CB", "CG", "CD"), 1.249, 118.4, ("chi3", 180.0)),
    ],
    "GLN": [
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, ("chi1", 0)),
        ("CD", ("CA", "CB", "CG"), 1.516, 112.6, ("chi2", 0)),
        ("OE1", ("CB", "CG", "CD"), 1.231, 120.8, ("chi3", 0)),
        ("NE2", ("CB", "CG", "CD"), 1.328, 116.4, ("chi3", 180.0)),
    ],
    "LYS": [
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, ("chi1", 0)),
        ("CD", ("CA", "CB", "CG"), 1.520, 111.3, ("chi2", 0)),
        ("CE", ("CB", "CG", "CD"), 1.520, 111.3, ("chi3", 0)),
        ("NZ", ("CG", "CD", "CE"), 1.489, 111.9, ("chi4", 0)),
    ],
    "ARG": [
        ("CG", ("N", "CA", "CB"), 1.520, 114.1, ("chi1", 0)),
        ("CD", ("CA", "CB", "CG"), 1.520, 111.3, ("chi2", 0)),
        ("NE", ("CB", "CG", "CD"), 1.460, 112.0, ("chi3", 0)),
        ("CZ", ("CG", "CD", "NE"), 1.329, 124.2, ("chi4", 0)),
        ("NH1", ("CD", "NE", "CZ"), 1.326, 120.0, 0.0),
        ("NH2", ("CD", "NE", "CZ"), 1.326, 120.0, 180.0),
    ],
}
AMINO_ACIDS = tuple(sorted(SIDE_CHAINS))

# Rotamer mixtures: per residue, per chi: (centres, weights, sd) in degrees.
_SP3 = ((-65.0, 180.0, 62.0), (0.55, 0.33, 0.12), 10.0)
_AROMATIC = ((-90.0, 90.0), (0.5, 0.5), 15.0)
_PLANAR_END = ((0.0, 180.0), (0.5, 0.5), 20.0)
ROTAMERS = {
    "SER": [((62.0, -65.0, 180.0), (0.48, 0.29, 0.23), 12.0)],
    "CYS": [_SP3],
    "MET": [_SP3, _SP3, _SP3],
    "LYS": [_SP3, _SP3, _SP3, _SP3],
    "ARG": [_SP3, _SP3, _SP3, ((180.0, -90.0, 90.0), (0.5, 0.25, 0.25), 15.0)],
    "VAL": [((175.0, -60.0, 63.0), (0.73, 0.20, 0.07), 10.0)],
    "THR": [((62.0, -65.0, 180.0), (0.49, 0.43, 0.08), 10.0)],
    "ILE": [((-65.0, 62.0, 180.0), (0.75, 0.15, 0.10), 10.0), ((170.0, -60.0, 65.0), (0.8, 0.1, 0.1), 12.0)],
    "LEU": [((-65.0, 180.0), (0.65, 0.35), 10.0), ((175.0, 65.0), (0.6, 0.4), 10.0)],
    "PRO": [((30.0, -30.0), (0.5, 0.5), 5.0), None],  # chi2 follows chi1 (ring pucker)
    "PHE": [_SP3, _AROMATIC],
    "TYR": [_SP3, _AROMATIC],
    "TRP": [_SP3, ((-90.0, 90.0, 0.0), (0.45, 0.45, 0.10), 15.0)],
    "HIS": [_SP3, ((-75.0, 80.0, 180.0), (0.4, 0.4, 0.2), 15.0)],
    "ASP": [_SP3, ((0.0, 60.0, -60.0), (0.5, 0.25, 0.25), 20.0)],
    "ASN": [_SP3, ((-40.0, 40.0, 120.0, -120.0), (0.35, 0.35, 0.15, 0.15), 20.0)],
    "GLU": [_SP3, _SP3, _PLANAR_END],
    "GLN": [_SP3, _SP3, _PLANAR_END],
}

# Ramachandran regions (phi, psi) centres, weights and sd: alpha-R, beta,
# polyproline II, alpha-L.
RAMACHANDRAN = (
    ((-63.0, -43.0), (-120.0, 130.0), (-65.0, 145.0), (60.0, 45.0)),
    (0.45, 0.25, 0.25, 0.05),
    ((8.0, 8.0), (15.0, 15.0), (10.0, 10.0), (10.0, 10.0)),
)


def place(a, b, c, bond, angle, torsion):
    """NeRF: the point D with |CD| = bond, angle BCD and torsion ABCD (degrees).

    Plain float arithmetic: numpy's cross and norm on 3-vectors cost more in call overhead
    than in arithmetic, and the on-the-fly training data build thousands of atoms a second.
    """
    angle, torsion = math.radians(angle), math.radians(torsion)
    ax, ay, az = float(a[0]), float(a[1]), float(a[2])
    bx, by, bz = float(b[0]), float(b[1]), float(b[2])
    cx, cy, cz = float(c[0]), float(c[1]), float(c[2])
    ux, uy, uz = cx - bx, cy - by, cz - bz  # bc, normalised
    norm = math.sqrt(ux * ux + uy * uy + uz * uz)
    ux, uy, uz = ux / norm, uy / norm, uz / norm
    vx, vy, vz = bx - ax, by - ay, bz - az  # ab
    nx, ny, nz = vy * uz - vz * uy, vz * ux - vx * uz, vx * uy - vy * ux  # n = ab x bc
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    nx, ny, nz = nx / norm, ny / norm, nz / norm
    mx, my, mz = ny * uz - nz * uy, nz * ux - nx * uz, nx * uy - ny * ux  # m = n x bc
    d0 = -bond * math.cos(angle)
    d1 = bond * math.sin(angle) * math.cos(torsion)
    d2 = bond * math.sin(angle) * math.sin(torsion)
    return np.array(
        [cx + d0 * ux + d1 * mx + d2 * nx, cy + d0 * uy + d1 * my + d2 * ny, cz + d0 * uz + d1 * mz + d2 * nz]
    )


def _draw(rng, centres, weights, sd):
    k = rng.choice(len(centres), p=np.asarray(weights) / np.sum(weights))
    return float(np.asarray(centres[k]) + rng.normal(0.0, sd, size=np.shape(centres[k])))


def draw_chis(resname: str, rng) -> list[float]:
    """Side-chain torsions chi1..chiN from the rotamer mixture."""
    chis = []
    for spec in ROTAMERS.get(resname, []):
        if spec is None:  # proline: chi2 ~ -chi1 keeps the ring closed
            chis.append(-1.2 * chis[-1])
        else:
            chis.append(_draw(rng, *spec))
    return chis


def draw_phi_psi(resname: str, rng) -> tuple[float, float]:
    """Backbone phi, psi from the Ramachandran mixture (proline phi near -65)."""
    centres, weights, sds = RAMACHANDRAN
    w = np.asarray(weights, float)
    if resname != "GLY":
        w[3] *= 0.3
    k = rng.choice(len(centres), p=w / w.sum())
    phi = centres[k][0] + rng.normal(0, sds[k][0])
    psi = centres[k][1] + rng.normal(0, sds[k][1])
    if resname == "PRO":
        phi = -65.0 + rng.normal(0, 8.0)
    return float(phi), float(psi)


def _side_chain(resname, atoms, chis):
    if resname == "GLY":
        return
    atoms["CB"] = place(atoms["C"], atoms["N"], atoms["CA"], CA_CB, ANG_N_CA_CB, TORSION_C_N_CA_CB)
    for name, (r1, r2, r3), bond, angle, torsion in SIDE_CHAINS[resname]:
        if isinstance(torsion, tuple):
            chi_index = int(torsion[0][3:]) - 1
            torsion = chis[chi_index] + torsion[1]
        atoms[name] = place(atoms[r1], atoms[r2], atoms[r3], bond, angle, torsion)


def build_dipeptide(res1: str, res2: str, rng):
    """Heavy atoms of res1-res2 with random backbone and side-chain torsions.

    Returns a list of (resname, residue number, atom name, element, xyz).
    """
    _, psi1 = draw_phi_psi(res1, rng)
    phi2, psi2 = draw_phi_psi(res2, rng)
    omega = 180.0 + rng.normal(0, 4.0)
    r1 = {"N": np.array([0.0, 0.0, 0.0]), "CA": np.array([N_CA, 0.0, 0.0])}
    t = np.radians(180.0 - ANG_N_CA_C)
    r1["C"] = r1["CA"] + CA_C * np.array([np.cos(t), np.sin(t), 0.0])
    r1["O"] = place(r1["N"], r1["CA"], r1["C"], C_O, ANG_CA_C_O, psi1 + 180.0)
    r2 = {"N": place(r1["N"], r1["CA"], r1["C"], C_N, ANG_CA_C_N, psi1)}
    r2["CA"] = place(r1["CA"], r1["C"], r2["N"], N_CA, ANG_C_N_CA, omega)
    r2["C"] = place(r1["C"], r2["N"], r2["CA"], CA_C, ANG_N_CA_C, phi2)
    r2["O"] = place(r2["N"], r2["CA"], r2["C"], C_O, ANG_CA_C_O, psi2 + 180.0)
    _side_chain(res1, r1, draw_chis(res1, rng))
    _side_chain(res2, r2, draw_chis(res2, rng))
    out = []
    for resseq, (name, atoms) in enumerate(((res1, r1), (res2, r2)), start=1):
        for atom_name, xyz in atoms.items():
            out.append((name, resseq, atom_name, atom_name[0], np.asarray(xyz, float)))
    return out


def expected_atoms(resname: str) -> list[str]:
    """Heavy-atom names of a complete residue (no OXT)."""
    names = ["N", "CA", "C", "O"]
    if resname != "GLY":
        names.append("CB")
    return names + [a[0] for a in SIDE_CHAINS[resname]]


def chirality_volume(n, ca, c, cb) -> float:
    """Signed volume (CA->N) . ((CA->C) x (CA->CB)); positive for L-amino acids."""
    return float(np.dot(n - ca, np.cross(c - ca, cb - ca)))
