"""The cell kinds: one module per kind, one registry.

Each kind is described once, in its own module (:mod:`.tumour`, :mod:`.stem`, :mod:`.tcell`,
:mod:`.macrophage`, :mod:`.fibroblast`, :mod:`.mdsc`), by a :class:`Kind`: its code, its name (the scenario
section under ``cells`` and the name in the file's ``kind`` code table), its legend label and
looks, the behaviours its rules may change, its exchange activity, and the hooks that pack its
parameters, place its initial cells, name its arrivals and bind its decide kernel. The
registry, filled here in code order, is what the rest of the package reads: the population list
and the counts (:mod:`tmesim.simulation`, :mod:`tmesim.cells`), the parameter rows, exchange
tables, placements, arrivals and decide loop (:mod:`tmesim.behaviour`), the per-kind tables of
the delivery of agents (:mod:`tmesim.therapy.delivery`), the kinds and behaviours of the rules
(:mod:`tmesim.scenario.cells_schema`), the code table of the result file
(:mod:`tmesim.runner`), the progress line (:mod:`tmesim.cli`), and the colours, legend, labels
and kind filter of every drawing (:mod:`tmesim.viz`).

This module and the kind modules are plain Python: they import nothing heavier than
:mod:`tmesim.kernels.codes` at import time (a hook imports its kernels when the cell phase is
built), so the command line and the figures read the registry without loading Numba.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..kernels import codes

__all__ = [
    "Kind",
    "Look",
    "activities",
    "all_kinds",
    "by_code",
    "by_name",
    "cancer",
    "count",
    "legend",
    "names",
    "placement_order",
    "population_colours",
    "populations",
    "register",
    "small",
    "unregister",
]


@dataclass(frozen=True)
class Look:
    """How cells of a kind in some states are drawn: legend ``label``, ``colour`` (``#RRGGBB``)
    and the ``states`` (codes of :mod:`tmesim.kernels.codes`) it applies to."""

    label: str
    colour: str
    states: tuple[int, ...]


@dataclass(frozen=True)
class Kind:
    """One cell kind.

    ``code`` is the value of the ``kind`` column (kinds are numbered 0, 1, ... in registry
    order); ``name`` names the kind in scenarios (the section ``cells.<name>``, when
    ``section`` is true), in the counts and in the file's code table; ``label`` is the legend's
    word for it and ``short`` the progress line's. ``looks`` are tried in order for each cell;
    a cell whose state no look lists is not drawn. ``rules`` lists the behaviours
    (:data:`tmesim.kernels.rules.BEHAVIOURS`) its decide kernel lets the scenario's rules
    change; ``activity`` (one of :data:`tmesim.kernels.codes.ACTIVITY_NAMES`) says how a cell's
    release into the fields scales (:func:`tmesim.kernels.lattice.exchange_maps`). A ``small``
    kind (T cells) is much smaller than a lattice site: with ``domain.small_cells_share_sites``
    its cells live on the second occupancy layer (``CellPopulation.small``), one small cell per
    site whatever large cell is there (docs/biology.md §4.10); its decide kernel must then read
    that layer for its free sites.

    The hooks take the cell phase, ``dyn`` (:class:`tmesim.behaviour.CellDynamics`):

    * ``pack(dyn)`` writes the kind's parameters into the vectors its kernel reads (its row of
      ``dyn.cancer_par``, which has a row per kind, or a vector of its own such as
      ``dyn.t_par``);
    * ``place(dyn, rng)`` places the initial cells and sets their columns; kinds are placed in
      ``place_rank`` order, every placement drawing from the one ``rng`` in turn;
    * ``arrivals(dyn)``, for a kind recruited from the blood, returns ``(recruitment section,
      (uniform purpose, signal purpose), division budget, phenotype)`` of its arrivals;
    * ``decide(dyn)`` is called once, when the cell phase is built, and returns the function
      called each step as ``step(n, arrays, lattice, views, keys, intents)`` (``views``: the
      :class:`~tmesim.kernels.agents.FieldViews` of ``CellDynamics._field_views``, as a plain
      tuple) when a cell of any kind in ``decides_for``
      (default: this kind) is present; that function must set the intent of every row of those
      kinds. ``lap`` names its part of the step in the per-kernel breakdown.
    """

    code: int
    name: str
    label: str
    short: str
    looks: tuple[Look, ...]
    decide: Callable | None = None
    decides_for: tuple[int, ...] = ()
    lap: str = ""
    section: bool = True
    rules: tuple[str, ...] = ()
    activity: str = "plain"
    small: bool = False
    pack: Callable | None = None
    place: Callable | None = None
    place_rank: int = 100
    arrivals: Callable | None = None

    @property
    def bits(self) -> int:
        """The bits of the census's ``present`` mask that call :attr:`decide`."""
        out = 0
        for k in self.decides_for or (self.code,):
            out |= 1 << k
        return out


_KINDS: list[Kind] = []


def register(kind: Kind) -> Kind:
    """Add ``kind`` to the registry; its code must be the next free one."""
    if kind.code != len(_KINDS):
        raise ValueError(f"kind {kind.name!r} has code {kind.code}, expected {len(_KINDS)}")
    if any(k.name == kind.name for k in _KINDS):
        raise ValueError(f"kind {kind.name!r} is registered already")
    if kind.activity not in codes.ACTIVITY_NAMES:
        raise ValueError(f"kind {kind.name!r}: activity {kind.activity!r} is not one of "
                         f"{', '.join(codes.ACTIVITY_NAMES)}")
    if kind.code >= 63:
        raise ValueError("at most 63 kinds (the census marks each present kind by one bit)")
    _KINDS.append(kind)
    return kind


def unregister(name: str) -> None:
    """Remove the last registered kind, ``name`` (for tests that register a kind of their own)."""
    if not _KINDS or _KINDS[-1].name != name:
        raise ValueError(f"{name!r} is not the last registered kind")
    _KINDS.pop()


def all_kinds() -> tuple[Kind, ...]:
    """The registered kinds, in code order."""
    return tuple(_KINDS)


def cancer(kind):
    """Whether each entry of the kind-code array ``kind`` is a cancer kind
    (``codes.CANCER_CODES``, the kernels' ``is_cancer``): a boolean array."""
    import numpy as np

    return np.isin(kind, codes.CANCER_CODES)


def small(share: bool) -> tuple[int, ...]:
    """The codes of the kinds on the small-cell layer: the ``small`` kinds when sites are
    shared (``domain.small_cells_share_sites``), none otherwise."""
    return tuple(k.code for k in _KINDS if k.small) if share else ()


def count() -> int:
    """Number of registered kinds."""
    return len(_KINDS)


def names() -> tuple[str, ...]:
    """Kind names in code order (the ``kind`` code table of a result file)."""
    return tuple(k.name for k in _KINDS)


def by_name(name: str) -> Kind:
    """The kind called ``name``."""
    for k in _KINDS:
        if k.name == name:
            return k
    raise KeyError(name)


def by_code(code: int) -> Kind:
    """The kind of code ``code``."""
    return _KINDS[code]


def placement_order() -> tuple[Kind, ...]:
    """The kinds in the order their initial cells are placed (``place_rank``, then code)."""
    return tuple(sorted(_KINDS, key=lambda k: (k.place_rank, k.code)))


def activities() -> tuple[int, ...]:
    """The exchange activity code (``codes.ACT_*``) of every kind, in code order."""
    return tuple(codes.ACTIVITY_NAMES.index(k.activity) for k in _KINDS)


def populations() -> tuple[str, ...]:
    """The populations counted per record: every kind (live cells), then necrotic cells."""
    return (*names(), "necrotic")


def population_colours() -> dict[str, str]:
    """Colour (``#RRGGBB``) of every population of :func:`populations`: a kind's first look, and
    for the necrotic cells the first look of a necrotic state."""
    out = {k.name: k.looks[0].colour for k in _KINDS if k.looks}
    necrotic = [look.colour for k in _KINDS for look in k.looks if codes.NECROTIC in look.states]
    if necrotic:
        out["necrotic"] = necrotic[0]
    return out


def legend() -> tuple[tuple[str, str, tuple[int, ...]], ...]:
    """``(label, colour, kind codes)`` of every look, in legend order: by kind, a look shared
    by several kinds (same label and colour, e.g. necrotic cancer cells) listed once."""
    out: dict[tuple[str, str], list[int]] = {}
    for k in _KINDS:
        for look in k.looks:
            out.setdefault((look.label, look.colour), []).append(k.code)
    return tuple((label, colour, tuple(codes_)) for (label, colour), codes_ in out.items())


def _register_builtins() -> None:
    from . import fibroblast, macrophage, mdsc, stem, tcell, tumour

    for module in (tumour, stem, tcell, macrophage, fibroblast, mdsc):
        register(module.KIND)
    assert names() == codes.KIND_NAMES, "kernels/codes.py and the kind modules disagree"


_register_builtins()
