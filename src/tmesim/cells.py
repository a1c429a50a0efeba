"""Cells as a structure of arrays on the lattice.

Every per-cell quantity is one column of the table in :mod:`tmesim.kernels.layout`; columns of
the same dtype are rows of one 2-D block so that a single kernel compacts them all. A cell has a stable ``id`` (never reused), its ``parent``
id (-1 for initial cells) and ``generation`` (lineage), a ``kind`` and ``state`` code
(:mod:`tmesim.kernels.codes`), its lattice ``site`` (flat index) and rule state. ``occ`` maps
each site to the row of the cell on it, or -1: at most one cell per site. When small cells
share sites (``domain.small_cells_share_sites``), the cells of the small kinds (T cells) are in
a second map, ``small``, instead: at most one small and one large cell per site.

State per cell: 8 (id) + 8 (parent) + 4 (generation) + 4 (divisions_left) + 4 per float32
column + 1 (kind) + 1 (state) + 4 (site) (:attr:`CellPopulation.nbytes_per_cell`); the
columns of a further dosed drug or formulation (:func:`~tmesim.kernels.layout.agent_columns`)
add 4 bytes each.
"""

from __future__ import annotations

import math

import numpy as np

from . import kinds
from .errors import ScenarioError
from .kernels import codes, layout
from .kernels import lattice as kl

I64_COLUMNS = layout.block_names("i64")
I32_COLUMNS = layout.block_names("i32")
#: float columns; ``phenotype`` is kind-specific: T-cell exhaustion, macrophage polarisation
#: (0 = M1, 1 = M2), fibroblast activation (0 = quiescent, 1 = CAF); so is ``aux``: 1 while a
#: T cell is engaged, 1 for a resident macrophage (0 for a recruited one)
F32_COLUMNS = layout.block_names("f32")
_BLOCKS = {"i64": I64_COLUMNS, "i32": I32_COLUMNS, "f32": F32_COLUMNS}


class CellPopulation:
    """Structure-of-arrays store of every cell on a ``(nz, ny, nx)`` lattice."""

    def __init__(self, shape3, capacity: int = 1024, agents=None, share: bool = False):
        """``agents`` names the dosed agents of each role of :data:`~tmesim.kernels.layout.FAMILIES`
        (``{"drug": [...], "nanoparticle": [...]}``): each holds its family of per-cell columns
        (:func:`~tmesim.kernels.layout.agent_columns`; the first of a role the table's own).
        ``share`` puts the cells of the small kinds on a layer of their own (``small``)."""
        self.shape3 = tuple(int(s) for s in shape3)
        self.n_sites = math.prod(self.shape3)
        self.n = 0
        self.next_id = 0
        self._cap = 0
        #: rows of each dosed agent's columns in the float32 block: agent -> column -> row
        self.agent_rows, self.extra_columns = layout.agent_columns(agents or {})
        self._blocks = dict(_BLOCKS)
        self._blocks["f32"] = F32_COLUMNS + tuple(c.name for c in self.extra_columns)
        #: float32 rows split at a division and given back to their field at death
        self.pools = np.array(layout.pool_rows(self.extra_columns), dtype=np.int64)
        #: what held columns (division "held") left the store with dead cells: (agent, column)
        #: -> sum over the removed cells, in the column's units times cell volumes (float64)
        self.removed_with_dead: dict[tuple[str, str], float] = {}
        for block, names in self._blocks.items():
            setattr(self, f"_{block}", np.empty((len(names), 0), layout.BLOCKS[block]))
        for name, dtype in layout.OWN_ARRAYS.items():  # kind, state, site
            setattr(self, name, np.empty(0, dtype))
        self.occ = np.full(self.n_sites, -1, np.int32)
        #: the kinds on the small-cell layer (none unless sites are shared) and its map
        self.small_kinds = kinds.small(share)
        self.small = np.full(self.n_sites if share else 1, -1, np.int32)
        self._arrays = None
        self.reserve(capacity)

    # ------------------------------------------------------------------ storage
    def reserve(self, capacity: int) -> None:
        """Grow every column to hold at least ``capacity`` rows (amortised doubling)."""
        if capacity <= self._cap:
            return
        cap = max(capacity, 2 * self._cap, 64)

        def grow(a):
            b = np.zeros((*a.shape[:-1], cap), a.dtype)
            b[..., : self.n] = a[..., : self.n]
            return b

        for name in (*(f"_{b}" for b in self._blocks), *layout.OWN_ARRAYS):
            setattr(self, name, grow(getattr(self, name)))
        self._cap = cap
        self._arrays = None

    def column(self, name: str) -> np.ndarray:
        """The full-capacity array of a column (rows ``[:n]`` are live)."""
        for block, names in self._blocks.items():
            if name in names:
                return getattr(self, f"_{block}")[names.index(name)]
        if name in layout.OWN_ARRAYS:
            return getattr(self, name)
        raise KeyError(name)

    def agent_column(self, agent: str, column: str) -> np.ndarray:
        """The full-capacity array of dosed ``agent``'s copy of family column ``column``
        (``drug``, ``bound``, ``retained``, ``damage``; ``payload`` of a formulation)."""
        return self._f32[self.agent_rows[agent][column]]

    def arrays(self) -> layout.CellArrays:
        """The store as the kernels take it (full capacity; valid until the next
        :meth:`reserve`, which may replace the arrays). The model passes ``tuple(...)`` of it
        (see :class:`tmesim.kernels.layout.CellArrays`)."""
        if self._arrays is None:
            self._arrays = layout.CellArrays(self._i64, self._i32, self._f32, self.kind,
                                             self.state, self.site, self.occ, self.small)
        return self._arrays

    def layer(self, kind: int) -> np.ndarray:
        """The occupancy map cells of ``kind`` go on: ``small`` for a small kind when sites are
        shared, else ``occ``."""
        return self.small if kind in self.small_kinds else self.occ

    def __getattr__(self, name):
        if name in I64_COLUMNS or name in I32_COLUMNS or name in F32_COLUMNS:
            return self.column(name)
        raise AttributeError(name)

    def compact(self) -> None:
        """Remove cells marked REMOVED, keeping the order of the others."""
        self.n = kl.compact(self.n, *self.arrays())

    @property
    def nbytes_per_cell(self) -> int:
        """Bytes of state per cell."""
        return sum(np.dtype(c.dtype).itemsize for c in (*layout.COLUMNS, *self.extra_columns))

    # ------------------------------------------------------------------ creation
    def add(self, kind: int, sites: np.ndarray, divisions_left: int) -> None:
        """Append cells of one kind on free ``sites`` (initial cells: parent -1, generation 0)."""
        sites = np.asarray(sites, dtype=np.int64)
        occ = self.layer(kind)
        if np.any(occ[sites] >= 0) or len(np.unique(sites)) != len(sites):
            raise ValueError("cells can only be added on distinct free sites")
        k = len(sites)
        self.reserve(self.n + k)
        rows = slice(self.n, self.n + k)
        self.column("id")[rows] = np.arange(self.next_id, self.next_id + k)
        self.column("parent")[rows] = -1
        self.column("generation")[rows] = 0
        self.column("divisions_left")[rows] = divisions_left
        self._f32[:, rows] = 0.0
        self.kind[rows] = kind
        self.state[rows] = codes.PROLIFERATING
        self.site[rows] = sites
        occ[sites] = np.arange(self.n, self.n + k, dtype=np.int32)
        self.n += k
        self.next_id += k

    def place(self, kind, count, placement, radius_um, voxel_um, rng, divisions_left, key,
              *, allowed=None, capillaries=None, alveolar=None):
        """Place ``count`` initial cells by a placement rule; see ``cells.<type>.initial``.

        ``allowed`` (flat bool, optional) restricts the sites a kind may take (normal cells do not
        sit in alveolar air); ``capillaries`` (flat bool) marks the capillary sites used by the
        ``capillary`` and ``capillary_cluster`` placements, ``alveolar`` (flat bool) the
        alveolar-surface sites of the ``alveolar`` placement. Returns the rows of the new cells.
        """
        if count == 0:
            return np.arange(self.n, self.n)
        coords = np.indices(self.shape3).reshape(3, -1).T.astype(np.float64)
        centre = (np.array(self.shape3, dtype=np.float64) - 1.0) / 2.0
        if self.shape3[0] == 1:
            centre[0] = 0.0
        dist_um = np.sqrt(((coords - centre) ** 2).sum(axis=1)) * voxel_um
        free = self.layer(kind) < 0
        if allowed is not None:
            free &= allowed
        if placement in ("capillary", "capillary_cluster"):
            if capillaries is None or not capillaries.any():
                raise ScenarioError(
                    f"placement '{placement}' needs capillaries, and this geometry has none",
                    key=f"{key}.placement",
                    value=placement,
                    expected="domain.geometry lung (or a mask with capillaries) for this placement",
                    fix="set domain.geometry: lung, or use placement disc",
                )
        if placement == "alveolar" and (alveolar is None or not alveolar.any()):
            raise ScenarioError(
                "placement 'alveolar' needs alveolar surfaces, and this geometry has no air",
                key=f"{key}.placement",
                value=placement,
                expected="domain.geometry lung (or a mask with air) for this placement",
                fix="set domain.geometry: lung, or use placement random",
            )
        if placement == "center":
            order = np.lexsort((np.arange(self.n_sites), dist_um))
            candidates = order[free[order]][:count]
        elif placement == "capillary_cluster":
            cap = np.flatnonzero(capillaries)
            origin = coords[cap[np.argmin(dist_um[cap])]]
            d0 = np.sqrt(((coords - origin) ** 2).sum(axis=1))
            order = np.lexsort((np.arange(self.n_sites), d0))
            candidates = order[free[order]][:count]
        else:
            if placement == "disc":
                mask = free & (dist_um <= radius_um)
            elif placement == "capillary":
                mask = free & capillaries
            elif placement == "alveolar":
                mask = free & alveolar
            else:
                mask = free
            pool = np.flatnonzero(mask)
            if len(pool) < count:
                raise ScenarioError(
                    f"not enough free sites to place {count} cells ({len(pool)} available)",
                    key=f"{key}.radius_um" if placement == "disc" else f"{key}.count",
                    value=radius_um if placement == "disc" else count,
                    expected="room for the requested cells",
                    fix="increase radius_um or lower count"
                    if placement == "disc"
                    else "lower count or enlarge domain.shape",
                )
            candidates = rng.choice(pool, size=count, replace=False)
        if len(candidates) < count:
            raise ScenarioError(
                f"not enough free sites to place {count} cells",
                key=f"{key}.count",
                value=count,
                expected="at most the number of free lattice sites",
                fix="lower count or enlarge domain.shape",
            )
        start = self.n
        self.add(kind, np.sort(candidates), divisions_left)
        return np.arange(start, self.n)

    # ------------------------------------------------------------------ summaries
    def counts(self) -> np.ndarray:
        """Counts per (kind, state)."""
        return kl.count_by_kind_state(
            self.n, self.kind, self.state, kinds.count(), len(codes.STATE_NAMES)
        )

    def snapshot(self) -> dict[str, np.ndarray]:
        """Copies of the live rows of the columns stored per record (``layout.RECORDED``)."""
        n = self.n
        out = {}
        for c in layout.COLUMNS:
            if not c.recorded:
                continue
            if c.name == "site":
                z, rem = np.divmod(self.site[:n].astype(np.int64),
                                   self.shape3[1] * self.shape3[2])
                y, x = np.divmod(rem, self.shape3[2])
                out.update(x=x.astype(np.int32), y=y.astype(np.int32), z=z.astype(np.int32))
            elif c.name == "aux":
                # resident (initial) macrophages carry 1 in ``aux``; T cells use it for engagement
                out["resident"] = ((self.kind[:n] == codes.MACROPHAGE)
                                   & (self.column("aux")[:n] > 0.5)).astype(np.int8)
            else:
                out[c.name] = self.column(c.name)[:n].copy()
        for c in self.extra_columns:  # the columns of further dosed agents, after the table's
            if c.recorded:
                out[c.name] = self.column(c.name)[:n].copy()
        return out

    def recorded_columns(self) -> dict[str, type]:
        """The columns of :meth:`snapshot` and their dtypes, in order (the writer's
        ``cell_columns``)."""
        return {r.name: np.dtype(r.dtype).type
                for r in (*layout.RECORDED, *(r for c in self.extra_columns for r in c.recorded))}
