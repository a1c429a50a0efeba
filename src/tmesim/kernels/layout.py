"""The cell columns: one table, from which everything that names a column is derived.

Every per-cell quantity is one entry of :data:`COLUMNS`. Columns of one dtype are the rows of one
2-D block of the cell store (:class:`tmesim.cells.CellPopulation`), in the order of the table, so
that one kernel compacts or copies them all; ``kind``, ``state`` and ``site`` are arrays of their
own. From the table follow:

- the named row constants the kernels index blocks with (``f32[DRUG, i]``, ``ids[ID, i]``);
  Numba reads module-level integers as compile-time constants, so a named row costs nothing;
- what a division does to each column (:data:`RESET_AT_DIVISION`, :data:`POOLS`);
- the columns of a record under ``/cells`` (:data:`RECORDED`, the writer's ``CELL_COLUMNS``),
  whose list in docs/output-format.md a test compares with this table.

This module is part of the kernel cache digest (:func:`tmesim.kernels._jit.source_digest` covers
every file of :mod:`tmesim.kernels`), so a change here recompiles the kernels that read it.
"""

from __future__ import annotations

from typing import NamedTuple

#: blocks of the cell store: name -> dtype of its rows
BLOCKS = {"i64": "int64", "i32": "int32", "f32": "float32"}


class Recorded(NamedTuple):
    """One column of a record under ``/cells``."""

    name: str
    dtype: str
    meaning: str


class Column(NamedTuple):
    """One per-cell column of the store.

    ``block`` is the 2-D block holding it (a key of :data:`BLOCKS`), or ``None`` for an array of
    its own with dtype ``dtype``. ``division`` says what a division does to a float column:
    ``"copy"`` (the daughter copies the mother), ``"reset"`` (0 in both) or ``"pool"`` (an amount
    of a substance, split equally between mother and daughter and given back to its field when
    the cell dies) or ``"held"`` (an amount split like a pool, which leaves the model with the
    cell when it dies instead of returning to a field); integer columns are set by the division rule of
    :func:`tmesim.kernels.agents.apply_actions`. ``recorded`` lists what a record stores of it
    (empty: not recorded; a column recorded under other names, such as ``site`` as ``x, y, z``,
    is converted by :meth:`tmesim.cells.CellPopulation.snapshot`).
    """

    name: str
    dtype: str
    block: str | None
    division: str
    recorded: tuple[Recorded, ...]


def _col(name, dtype, block, division, *recorded):
    if recorded and isinstance(recorded[0], str):  # recorded as itself: (meaning,)
        recorded = (Recorded(name, dtype, recorded[0]),)
    return Column(name, dtype, block, division, tuple(recorded))


#: every per-cell column, in the order of the store's blocks and of a record
COLUMNS = (
    _col("id", "int64", "i64", "rule",
         "cell id, unique within the run and never reused; follows a cell across records"),
    _col("parent", "int64", "i64", "rule",
         "id of the mother cell, −1 for cells present at the start"),
    _col("generation", "int32", "i32", "rule", "divisions since an initial cell"),
    _col("kind", "int8", None, "rule", "kind code, see `kind_codes`"),
    _col("state", "int8", None, "rule", "state code, see `state_codes`"),
    _col("site", "int32", None, "rule",
         *(Recorded(a, "int32", "lattice indices of the cell's site (`z` = 0 in 2-D); position "
                    "in µm is `(index + 0.5) × voxel_um`, i.e. the matching entry of "
                    "`/fields/x_um` etc.") for a in ("x", "y", "z"))),
    _col("divisions_left", "int32", "i32", "rule",
         "remaining divisions of a tumour cell or of a T cell (−1: unlimited); "
         "not used for other kinds (stem-like cells carry 0)"),
    # time since birth or the last division; for a necrotic cell, since necrosis (h)
    _col("clock_h", "float32", "f32", "reset"),
    _col("pdl1", "float32", "f32", "copy",
         "PD-L1 level of a cancer cell, 0-1 of its maximum ([biology.md](biology.md))"),
    _col("pgp", "float32", "f32", "copy",
         "P-gp level of a cancer cell (1 = the MDR1 line of [pharmacology.md](pharmacology.md));"
         " its induction and knockdown show here"),
    _col("drug", "float32", "f32", "pool",
         "free intracellular drug of a cancer cell (µM of cell volume; 0 without therapy)"),
    _col("bound", "float32", "f32", "pool", "drug bound to DNA/nuclear sites in a cancer cell "
         "(µM of cell volume; 0 for a drug without binding)"),
    _col("retained", "float32", "f32", "pool", "drug in the slow, tightly bound (intercalated) "
         "pool of a cancer cell (µM of cell volume; 0 for a drug without it)"),
    _col("damage", "float32", "f32", "copy", "drug damage of a cancer cell, the repaired "
         "integral of its bound and retained drug (µM h, "
         "[pharmacology.md §7](pharmacology.md#7-killing))"),
    # the P-gp level a cell returns to without induction or knockdown (set at placement)
    _col("pgp_base", "float32", "f32", "copy"),
    _col("phenotype", "float32", "f32", "copy",
         "per-kind continuous state: T-cell antigen exposure as a fraction of the exposure that "
         "exhausts (exhausted at 1), macrophage polarisation (0 = M1, 1 = M2), fibroblast "
         "activation (1 = CAF); 0 for cancer cells"),
    _col("payload", "float32", "f32", "pool",
         "internalised nanoparticles, µM of drug-equivalent per cell volume (cancer cells and "
         "macrophages; 0 without a formulation)"),
    _col("carrier", "float32", "f32", "held",
         "emptied nanoparticles in a cell: particle material whose payload was released inside, "
         "µM of drug-equivalent at loading per cell volume; lost at "
         "`nanoparticles.<f>.carrier_loss_per_h`, removed with the cell when it dies "
         "([pharmacology.md §13.12](pharmacology.md#1312-particle-material-after-release))"),
    _col("lytic_spent", "float32", "f32", "copy",
         "lytic granule store a T cell has spent, in kills' worth; refills toward 0 "
         "([biology.md §5.4](biology.md#54-engagement-killing-and-exhaustion))"),
    _col("tcf1", "float32", "f32", "copy",
         "CD8 T-cell lineage with the progenitor model on: 1 a stem-like TCF1+ progenitor, 0 an "
         "effector (terminally exhausted once its state is quiescent); a product of a "
         "progenitor division draws its fate at its next step "
         "([biology.md §5.10](biology.md#510-stem-like-progenitors-and-effectors)); 0 for other "
         "kinds and with the model off"),
    # share of a dying cancer cell's death that is immunogenic (ICD), set in the step it dies
    # (docs/biology.md §5.8); 0 for every other cell
    _col("icd", "float32", "f32", "reset"),
    # kind-specific: 1 while a T cell is engaged; 1 for a resident macrophage, 0 for a recruited one
    _col("aux", "float32", "f32", "copy",
         Recorded("resident", "int8",
                  "1 for a resident macrophage (one of the initial macrophages, e.g. alveolar "
                  "macrophages), 0 for a macrophage recruited from the blood and for every other "
                  "kind ([biology.md §6](biology.md#6-macrophages))")),
)


def block_names(block: str) -> tuple[str, ...]:
    """Names of the columns stored in ``block``, in row order."""
    return tuple(c.name for c in COLUMNS if c.block == block)


def row(name: str) -> int:
    """Row of column ``name`` in its block."""
    for c in COLUMNS:
        if c.name == name and c.block is not None:
            return block_names(c.block).index(name)
    raise KeyError(f"no column '{name}' in a block of the cell store")


#: columns that are arrays of their own: name -> dtype
OWN_ARRAYS = {c.name: c.dtype for c in COLUMNS if c.block is None}

# rows of the int64 block
ID = row("id")
PARENT = row("parent")
# rows of the int32 block
GENERATION = row("generation")
DIVISIONS_LEFT = row("divisions_left")
# rows of the float32 block
CLOCK_H = row("clock_h")
PDL1 = row("pdl1")
PGP = row("pgp")
DRUG = row("drug")
BOUND = row("bound")
RETAINED = row("retained")
DAMAGE = row("damage")
PGP_BASE = row("pgp_base")
PHENOTYPE = row("phenotype")
PAYLOAD = row("payload")
#: emptied nanoparticles (particle material after release; docs/pharmacology.md §13.12)
CARRIER = row("carrier")
LYTIC_SPENT = row("lytic_spent")
#: 1 for a stem-like (TCF1+) progenitor T cell, 0 for an effector (docs/biology.md §5.10)
TCF1 = row("tcf1")
#: immunogenic share of the death of a cancer cell that dies this step (0 otherwise)
ICD = row("icd")
#: kind-specific flag: 1 while a T cell is engaged with a target; 1 for a resident macrophage
AUX = row("aux")

#: float rows set to 0 in mother and daughter at a division (the cell-cycle clock)
RESET_AT_DIVISION = tuple(row(c.name) for c in COLUMNS if c.division == "reset")
#: the divisions of columns that hold an amount of a substance, split equally at a division:
#: given back to their field when the cell dies (``"pool"``) or leaving with it (``"held"``)
SPLIT = ("pool", "held")
#: float rows that hold an amount of a substance (:data:`SPLIT`)
POOLS = tuple(row(c.name) for c in COLUMNS if c.division in SPLIT)

#: the columns of a record under ``/cells``, in order
RECORDED = tuple(r for c in COLUMNS for r in c.recorded)

#: per-agent column families: the columns that one dosed agent of a role holds per cell. The
#: first dosed agent of a role holds the table's own columns (the named rows above, so a
#: scenario with one agent per role has exactly this layout); each further agent of the role
#: gets a copy of the family appended to the float32 block, named ``<column>_<agent>``
#: (:func:`agent_columns`). So no kernel reads a family column by its named row (``DRUG``):
#: kernels take an agent's columns as arrays, or its rows as numbers (``kernels.cancer.D_ROW``).
FAMILIES = {"drug": ("drug", "bound", "retained", "damage"),
            "nanoparticle": ("payload", "carrier")}


def division(name: str) -> str:
    """What a division (and a death) does to column ``name`` (:class:`Column`)."""
    return next(c.division for c in COLUMNS if c.name == name)


def agent_columns(roles: dict[str, list[str]]) -> tuple[dict[str, dict[str, int]],
                                                        tuple[Column, ...]]:
    """The float32 rows of the per-agent columns of a run and the columns added for them.

    ``roles`` names the dosed agents of each role of :data:`FAMILIES` in order
    (``{"drug": ["doxorubicin", "cisplatin"], "nanoparticle": [...]}``). Returns ``(rows,
    extra)``: ``rows[agent][column]`` is the row of the agent's copy of ``column`` in the
    float32 block, and ``extra`` the columns appended after the table's own, in row order (each
    recorded, if the family column is, as ``<column>_<agent>`` with the family column's
    meaning).
    """
    base = len(block_names("f32"))
    rows: dict[str, dict[str, int]] = {}
    extra: list[Column] = []
    for role, agents in roles.items():
        family = FAMILIES[role]
        for j, agent in enumerate(agents):
            if j == 0:
                rows[agent] = {col: row(col) for col in family}
                continue
            rows[agent] = {}
            for col in family:
                c = next(c for c in COLUMNS if c.name == col)
                name = f"{col}_{agent}"
                rec = tuple(Recorded(name, r.dtype, f"as `{col}`, for agent `{agent}`")
                            for r in c.recorded)
                rows[agent][col] = base + len(extra)
                extra.append(Column(name, c.dtype, "f32", c.division, rec))
    return rows, tuple(extra)


def pool_rows(extra: tuple[Column, ...] = ()) -> tuple[int, ...]:
    """Float32 rows that hold an amount of a substance (split at a division): :data:`POOLS`,
    then the pools and held amounts among the ``extra`` columns of :func:`agent_columns`."""
    base = len(block_names("f32"))
    return POOLS + tuple(base + j for j, c in enumerate(extra) if c.division in SPLIT)


class CellArrays(NamedTuple):
    """The cell store as the kernels take it (:meth:`tmesim.cells.CellPopulation.arrays`): the
    three blocks, the own arrays, the occupancy map (``occ[site]``: the row on the site, or
    -1) and ``small``, the map of the small-cell layer (the row of the small cell on the site,
    or -1; a length-1 array when sites are not shared, and every cell is in ``occ``), each at
    full capacity.

    Kernels read it by position (``cells[STATE]``, the positions below), so a plain tuple in
    this order works as well, and the model passes one: Numba takes about 1 µs longer to
    dispatch a call per named-tuple argument than per plain tuple, which is 5 % of a cell phase
    of 10^4 cells. A parallel kernel takes each array into a local of its own before its
    ``prange`` loop, one per statement (``state = cells[STATE]``): Numba (0.68) drops the writes
    made inside such a loop to an array taken from the tuple by unpacking (``ids, i32, ... =
    cells``); tests/test_layout.py pins the pattern and checks the kernels.
    """

    ids: object
    i32: object
    f32: object
    kind: object
    state: object
    site: object
    occ: object
    small: object


# positions in CellArrays
IDS = CellArrays._fields.index("ids")
I32 = CellArrays._fields.index("i32")
F32 = CellArrays._fields.index("f32")
KIND = CellArrays._fields.index("kind")
STATE = CellArrays._fields.index("state")
SITE = CellArrays._fields.index("site")
OCC = CellArrays._fields.index("occ")
SMALL = CellArrays._fields.index("small")
