"""Tissue maps: plain interstitium, a generated alveolar lung parenchyma, or a user label image.

A tissue map is an ``int8`` array of the lattice shape with the codes of :data:`TISSUE_CODES`.
Air and airway lumens are non-conducting for diffusing fields; capillaries and vessels are where
plasma-borne agents and recruited immune cells enter; alveolar surfaces (tissue sites next to air)
receive inhaled deposits.

The generated lung (``domain.geometry.kind: lung``) is a Voronoi foam: alveolar centres are
placed on a jittered lattice (hexagonal in 2-D, cubic in 3-D) whose spacing is chosen so that the
air lumen of each cell has the configured equivalent diameter; septa are the sites within half
the septal thickness of a Voronoi face (at least 0.75 voxel, so walls stay connected on the
lattice); a fraction of septal sites are capillaries. The map is a pure function of the
configuration and the seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import ScenarioError

TISSUE = 0
AIR = 1
CAPILLARY = 2
VESSEL = 3
AIRWAY = 4
TISSUE_CODES = {
    "tissue": TISSUE,
    "air": AIR,
    "capillary": CAPILLARY,
    "vessel": VESSEL,
    "airway": AIRWAY,
}
#: codes through which no diffusive flux passes
NON_CONDUCTING = (AIR, AIRWAY)
#: codes that carry plasma (entry sites for plasma-borne agents and immune cells)
PERFUSED = (CAPILLARY, VESSEL)

_GEOMETRY_STREAM = 0x6E0


def lattice_spacing_um(diameter_um: float, septum_um: float, ndim: int) -> float:
    """Centre spacing that gives air lumens of equivalent diameter ``diameter_um``.

    2-D hexagonal cells of spacing s have area (sqrt(3)/2) s**2; 3-D cubic cells volume s**3.
    The lumen is the cell shrunk by the septal thickness.
    """
    if ndim == 2:
        side = diameter_um * math.sqrt(math.pi / (2.0 * math.sqrt(3.0)))
    else:
        side = diameter_um / (6.0 / math.pi) ** (1.0 / 3.0)
    return side + septum_um


def _centres(shape3, voxel_um, spacing_um, jitter, rng) -> np.ndarray:
    """Jittered lattice of alveolar centres (um, columns z, y, x) covering the domain and a margin."""
    nz, ny, nx = shape3
    ext = np.array([nz, ny, nx], dtype=float) * voxel_um
    if nz == 1:
        dy = spacing_um * math.sqrt(3.0) / 2.0
        rows = np.arange(-1, int(ext[1] / dy) + 2)
        pts = []
        for r in rows:
            off = 0.5 * spacing_um * (r % 2)
            xs = np.arange(-1, int(ext[2] / spacing_um) + 2) * spacing_um + off
            pts.extend((0.0, r * dy, x) for x in xs)
        pts = np.array(pts)
        pts[:, 1:] += rng.uniform(-jitter, jitter, size=(len(pts), 2)) * spacing_um
        pts[:, 0] = 0.5 * voxel_um
        return pts
    axes = [np.arange(-1, int(e / spacing_um) + 2) * spacing_um for e in ext]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid + rng.uniform(-jitter, jitter, size=grid.shape) * spacing_um


def _nearest_two(shape3, voxel_um, centres, spacing_um):
    """For every site: index of the nearest centre and the distance to the nearest Voronoi face."""
    nz, ny, nx = shape3
    coords = [(np.arange(n) + 0.5) * voxel_um for n in shape3]
    n_sites = nz * ny * nx
    d1 = np.full(n_sites, np.inf)
    d2 = np.full(n_sites, np.inf)
    i1 = np.full(n_sites, -1, dtype=np.int64)
    i2 = np.full(n_sites, -1, dtype=np.int64)
    reach = 2.0 * spacing_um
    flat_index = np.arange(n_sites).reshape(shape3)
    for c, centre in enumerate(centres):
        sl = []
        for axis in range(3):
            lo = np.searchsorted(coords[axis], centre[axis] - reach)
            hi = np.searchsorted(coords[axis], centre[axis] + reach)
            sl.append(slice(lo, hi))
        if any(s.stop <= s.start for s in sl):
            continue
        zz, yy, xx = np.meshgrid(
            coords[0][sl[0]], coords[1][sl[1]], coords[2][sl[2]], indexing="ij"
        )
        if nz == 1:
            d = np.sqrt((yy - centre[1]) ** 2 + (xx - centre[2]) ** 2).ravel()
        else:
            d = np.sqrt(
                (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
            ).ravel()
        idx = flat_index[sl[0], sl[1], sl[2]].ravel()
        closer = d < d1[idx]
        second = ~closer & (d < d2[idx])
        # shift the old nearest to second place where this centre is closer
        j = idx[closer]
        d2[j], i2[j] = d1[j], i1[j]
        d1[j], i1[j] = d[closer], c
        k = idx[second]
        d2[k], i2[k] = d[second], c
    # distance to the bisector plane of the two nearest centres: (d2^2 - d1^2) / (2 |c1 - c2|)
    sep = np.linalg.norm(centres[i1] - centres[i2], axis=1)
    face = (d2**2 - d1**2) / (2.0 * np.maximum(sep, 1e-12))
    return i1.reshape(shape3), face.reshape(shape3)


def generate_lung(
    shape,
    voxel_um,
    *,
    alveolar_diameter_um,
    septum_um,
    capillary_fraction,
    jitter=0.2,
    airway_diameter_um=0.0,
    vessel_diameter_um=0.0,
    seed=0,
):
    """Generate an alveolar tissue map; returns ``(tissue, alveolus_id)`` of the lattice shape.

    ``alveolus_id`` labels the air sites of each alveolus (-1 elsewhere) for measurements.
    """
    shape = tuple(int(s) for s in shape)
    shape3 = (1, *shape) if len(shape) == 2 else shape
    ndim = len(shape)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _GEOMETRY_STREAM]))
    half_wall = max(septum_um / 2.0, 0.75 * voxel_um)
    spacing = lattice_spacing_um(alveolar_diameter_um, 2.0 * half_wall, ndim)
    centres = _centres(shape3, voxel_um, spacing, jitter, rng)
    owner, face = _nearest_two(shape3, voxel_um, centres, spacing)
    tissue = np.where(face <= half_wall, TISSUE, AIR).astype(np.int8)
    septal = tissue == TISSUE
    capillary = septal & (rng.random(shape3) < capillary_fraction)
    tissue[capillary] = CAPILLARY
    coords = np.stack(
        np.meshgrid(*[(np.arange(n) + 0.5) * voxel_um for n in shape3], indexing="ij")
    )
    ext = np.array(shape3, dtype=float) * voxel_um
    for diameter, code, where in (
        (airway_diameter_um, AIRWAY, 0.25),
        (vessel_diameter_um, VESSEL, 0.75),
    ):
        if diameter <= 0:
            continue
        centre = ext * where
        # a tube along z (a disc in 2-D), surrounded by one voxel of tissue wall
        r = np.sqrt((coords[1] - centre[1]) ** 2 + (coords[2] - centre[2]) ** 2)
        wall = r <= diameter / 2.0 + voxel_um
        tissue[wall] = TISSUE
        tissue[r <= diameter / 2.0] = code
    alveolus = np.where(tissue == AIR, owner, -1)
    if ndim == 2:
        return tissue[0], alveolus[0]
    return tissue, alveolus


def measure_lung(tissue, alveolus, voxel_um) -> dict:
    """Air fraction, capillary fraction of septal sites and mean alveolar equivalent diameter.

    Alveoli touching the domain edge are left out of the diameter (they are cut).
    """
    ndim = tissue.ndim
    air = tissue == AIR
    septal = (tissue == TISSUE) | (tissue == CAPILLARY)
    ids = alveolus[air]
    edge = np.zeros(tissue.shape, bool)
    for axis in range(ndim):
        idx = [slice(None)] * ndim
        idx[axis] = 0
        edge[tuple(idx)] = True
        idx[axis] = -1
        edge[tuple(idx)] = True
    cut = np.unique(alveolus[edge & air])
    labels, sizes = np.unique(ids, return_counts=True)
    inside = ~np.isin(labels, cut)
    vol = sizes[inside] * voxel_um**ndim
    if ndim == 2:
        diam = 2.0 * np.sqrt(vol / math.pi)
    else:
        diam = (6.0 * vol / math.pi) ** (1.0 / 3.0)
    return {
        "air_fraction": float(air.mean()),
        "capillary_fraction_of_septum": float((tissue == CAPILLARY).sum() / max(1, septal.sum())),
        "mean_alveolar_diameter_um": float(diam.mean()) if len(diam) else float("nan"),
        "n_alveoli": int(inside.sum()),
    }


def load_mask(path, shape, codes: dict, *, key="domain.geometry.mask") -> np.ndarray:
    """Read a label image (.npy, .png, .tif/.tiff) and translate its labels to tissue codes.

    ``codes`` maps tissue names (``air``, ``tissue``, ``capillary``, ``vessel``, ``airway``) to the
    label values used in the image; every label in the image must be mapped.
    """
    return labels_to_tissue(read_mask_labels(path, shape, key=key), codes, key=key)


def _mask_error(problem, path, key, *, expected, fix) -> ScenarioError:
    return ScenarioError(problem, key=f"{key}.path", value=str(path), expected=expected, fix=fix)


def read_mask_labels(path, shape, *, key="domain.geometry.mask") -> np.ndarray:
    """The label image at ``path`` as int64, checked against the domain ``shape``.

    An RGB(A) image on a 2-D domain is accepted when its colour channels agree (a grey image
    saved in colour); otherwise it is refused rather than reduced to one channel.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if not p.is_file():
        raise _mask_error(
            "mask file not found",
            path,
            key,
            expected="an existing .npy, .png or .tif file",
            fix="check the path (relative to the scenario file)",
        )
    try:
        if suffix == ".npy":
            img = np.load(p, allow_pickle=False)
        elif suffix == ".png":
            import matplotlib.image as mpimg

            img = mpimg.imread(p)
            if img.dtype.kind == "f":
                img = np.rint(img * 255).astype(np.int64)
        elif suffix in (".tif", ".tiff"):
            from PIL import Image

            with Image.open(p) as im:
                img = np.array(im)
        else:
            raise _mask_error(
                "unsupported mask format",
                path,
                key,
                expected="a .npy, .png, .tif or .tiff file",
                fix="save the label image as .npy or .png",
            )
    except ScenarioError:
        raise
    except Exception as exc:
        raise _mask_error(
            f"cannot read the mask image ({exc})",
            path,
            key,
            expected="a readable label image",
            fix="re-export the image as .npy or 8-bit .png",
        ) from None
    if img.ndim == len(shape) + 1 and len(shape) == 2 and img.shape[-1] in (3, 4):
        rgb = img[..., :3]
        if not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])):
            raise _mask_error(
                "mask image has colour channels that differ",
                path,
                key,
                expected="a single-channel label image (or a grey image whose channels agree)",
                fix="save the labels as a one-channel .npy or 8-bit grey .png",
            )
        img = img[..., 0]
    if tuple(img.shape) != tuple(shape):
        raise ScenarioError(
            f"mask shape {tuple(img.shape)} does not match domain.shape {list(shape)}",
            key="domain.shape",
            value=list(shape),
            expected=f"{list(img.shape)} to match the mask",
            fix=f"set domain.shape: {list(img.shape)}",
        )
    if img.dtype.kind not in "biuf" or (img.dtype.kind == "f" and not np.isfinite(img).all()):
        raise _mask_error(
            "mask image does not hold finite numeric labels",
            path,
            key,
            expected="integer labels",
            fix="save the labels as integers (.npy of int, or 8-bit .png)",
        )
    return np.asarray(img).astype(np.int64)


def labels_to_tissue(img, codes: dict, *, key="domain.geometry.mask") -> np.ndarray:
    """Translate a label image to tissue codes (every label must be mapped by ``codes``)."""
    out = np.full(img.shape, -1, dtype=np.int8)
    for name, label in codes.items():
        out[img == int(label)] = TISSUE_CODES[name]
    unknown = np.unique(img[out < 0])
    if len(unknown):
        raise ScenarioError(
            f"mask contains labels with no tissue code: {unknown[:10].tolist()}",
            key=f"{key}.codes",
            value=dict(codes),
            expected="every label of the image mapped to air, tissue, capillary, vessel or airway",
            fix=f"add the labels {unknown[:10].tolist()} to {key}.codes",
        )
    return out


def face_neighbours(sites, shape):
    """The face neighbours of flat ``sites`` of a lattice of ``shape``, one direction at a time.

    Yields ``(inside, nb)`` for the directions -z, +z, -y, +y, -x, +x in that order (axes of
    ``shape``; a 2-D shape has only y and x): ``inside[j]`` is whether site ``j`` has a neighbour
    in that direction, ``nb[j]`` its flat index where it has (meaningless elsewhere). Every walk
    over face neighbours uses this one, so all visit them in the same order.
    """
    sites = np.asarray(sites, dtype=np.int64)
    coords = np.unravel_index(sites, shape)
    stride = 1
    strides = []
    for n in reversed(shape):
        strides.append(stride)
        stride *= n
    strides.reverse()
    for axis, n in enumerate(shape):
        for step in (-1, 1):
            c = coords[axis] + step
            yield (c >= 0) & (c < n), sites + step * strides[axis]


def alveolar_surface(tissue) -> np.ndarray:
    """Tissue sites with an air neighbour (face-adjacent): where inhaled particles deposit."""
    air = np.isin(tissue, NON_CONDUCTING)
    near = np.zeros(air.size, bool)
    for inside, nb in face_neighbours(np.flatnonzero(air), tissue.shape):
        near[nb[inside]] = True
    return ~air & near.reshape(tissue.shape)
