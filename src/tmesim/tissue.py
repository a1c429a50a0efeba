"""The tissue of a run: its map and the site sets the model derives from it (:class:`Tissue`).

The map (:mod:`tmesim.geometry` codes, one per lattice site) changes in three ways during a run:
which lumen sites cancer cells fill (:meth:`Tissue.empty_lumen`), capillaries that regress
inside tumour become tissue (:meth:`Tissue.regress_capillaries`), and new, immature vessels
sprout into tissue (:meth:`Tissue.add_vessels`). Every set is computed here
and read by the cell rules (:class:`tmesim.behaviour.CellDynamics`), the delivery of agents
(:class:`tmesim.therapy.Therapy`) and the field set's geometry
(:meth:`tmesim.simulation.Simulation.update_tissue`).
"""

from __future__ import annotations

import numpy as np

from . import geometry as geo
from .kernels import lattice as kl


def build_tissue(scenario) -> np.ndarray:
    """The tissue map of a scenario's geometry (int8 codes of :mod:`tmesim.geometry`): plain
    interstitium, a generated lung or a mask."""
    d = scenario.domain
    if d.geometry == "lung":
        lung = d.lung
        codes_map, _ = geo.generate_lung(
            d.shape, d.voxel_um, alveolar_diameter_um=lung.alveolar_diameter_um,
            septum_um=lung.septum_um, capillary_fraction=lung.capillary_fraction,
            jitter=lung.jitter, airway_diameter_um=lung.airway_diameter_um,
            vessel_diameter_um=lung.vessel_diameter_um, seed=scenario.seed,
        )
        return codes_map
    if d.geometry == "mask":
        return geo.load_mask(d.mask.path, d.shape, d.mask.codes)
    return np.zeros(d.shape, dtype=np.int8)


class Tissue:
    """The tissue map of a run and its derived site sets.

    Parameters
    ----------
    codes : numpy.ndarray
        The tissue map, ``int8`` codes of :data:`tmesim.geometry.TISSUE_CODES` in the scenario's
        lattice shape (2-D or 3-D).
    shape3 : tuple of int
        The lattice as ``(nz, ny, nx)``.

    The site sets are flat boolean arrays over the sites (``site = (z * ny + y) * nx + x``):

    ``lumen``
        air of alveoli and airways: no diffusive flux unless a cancer cell fills the site, and
        no cell but a cancer cell enters it;
    ``perfused``
        capillary and vessel sites: held at each field's ``vessel_value``, where intravenous
        agents and recruited immune cells enter;
    ``capillaries``
        capillary sites (the ``capillary`` and ``capillary_cluster`` placements);
    ``alveolar_surface``
        tissue sites that share a face with lumen: where inhaled particles deposit, and the
        ``alveolar`` placement;
    ``angiogenic``
        capillaries formed during the run by angiogenesis: immature and leaky
        (docs/biology.md §9.2);

    and two float arrays that are 1 where no angiogenic vessel is: ``leakiness``, each
    angiogenic vessel's wall permeability relative to the tumour-vessel value of an agent, and
    ``perfusion``, the share of full blood supply it carries (its held field values and its
    exchange with plasma scale by it).
    """

    def __init__(self, codes_map, shape3):
        self.codes = np.asarray(codes_map, dtype=np.int8)
        self.shape3 = tuple(int(s) for s in shape3)
        flat = self.codes.reshape(-1)
        self.lumen = np.isin(flat, geo.NON_CONDUCTING)
        self._lumen_sites = np.flatnonzero(self.lumen)
        self.perfused = np.isin(flat, geo.PERFUSED)
        self.capillaries = flat == geo.CAPILLARY
        self.alveolar_surface = geo.alveolar_surface(self.codes.reshape(self.shape3)).reshape(-1)
        self.angiogenic = np.zeros(flat.shape[0], dtype=bool)
        self.leakiness = np.ones(flat.shape[0])
        self.perfusion = np.ones(flat.shape[0])

    @classmethod
    def uniform(cls, shape3) -> Tissue:
        """Plain interstitium everywhere (no lumen, no vessels)."""
        return cls(np.zeros(shape3, dtype=np.int8), shape3)

    @classmethod
    def from_scenario(cls, scenario, shape3) -> Tissue:
        """The tissue of a scenario's ``domain.geometry`` (:func:`build_tissue`)."""
        return cls(build_tissue(scenario), shape3)

    @property
    def n_sites(self) -> int:
        return self.lumen.shape[0]

    @property
    def blocked(self) -> np.ndarray:
        """The lumen as the cell kernels take it: sites only cancer cells may enter, or a
        length-1 array when there is no lumen."""
        return self.lumen if self.lumen.any() else np.zeros(1, dtype=bool)

    def shaped(self, flat: np.ndarray) -> np.ndarray:
        """A flat site set in the shape of the map."""
        return flat.reshape(self.codes.shape)

    def entry_sites(self) -> np.ndarray:
        """Where recruited cells arrive: the perfused sites, or without any the tissue sites on
        the faces of the domain (int64, ascending)."""
        if self.perfused.any():
            return np.flatnonzero(self.perfused).astype(np.int64)
        edge = np.zeros(self.shape3, dtype=bool)
        edge[:, 0, :] = edge[:, -1, :] = edge[:, :, 0] = edge[:, :, -1] = True
        if self.shape3[0] > 1:
            edge[0] = edge[-1] = True
        return np.flatnonzero(edge.reshape(-1) & ~self.lumen).astype(np.int64)

    def empty_lumen(self, occ: np.ndarray, kind: np.ndarray) -> np.ndarray | None:
        """Lumen sites no cancer cell fills now: they conduct no diffusive flux. ``occ`` and
        ``kind`` are the cell store's occupancy map and kind column; None without lumen."""
        if not self._lumen_sites.size:
            return None
        empty = self.lumen.copy()
        self.update_empty_lumen(empty, occ, kind)
        return empty

    def update_empty_lumen(self, empty: np.ndarray, occ: np.ndarray, kind: np.ndarray):
        """Bring ``empty``, an earlier :meth:`empty_lumen` of this tissue, up to date in place
        (:func:`tmesim.kernels.lattice.update_empty_lumen`); returns the lumen sites cancer cells
        filled since and those they left (flat, ascending). A lumen site that became a vessel
        since (:meth:`add_vessels`) was filled, so it stays false in ``empty`` as it should."""
        sites = self._lumen_sites
        filled = np.empty(sites.size, dtype=np.int64)
        emptied = np.empty(sites.size, dtype=np.int64)
        nf, ne = kl.update_empty_lumen(sites, occ, kind, empty, filled, emptied)
        return filled[:nf], emptied[:ne]

    def regress_capillaries(self, sites) -> None:
        """Capillary ``sites`` (flat) that stopped being perfused become ordinary tissue for the
        rest of the run (:meth:`tmesim.simulation.Simulation.remodel_vessels`); the lumen and
        the alveolar surface do not change."""
        self.codes.reshape(-1)[sites] = geo.TISSUE
        self.perfused[sites] = False
        self.capillaries[sites] = False
        self.angiogenic[sites] = False
        self.leakiness[sites] = 1.0
        self.perfusion[sites] = 1.0

    def add_vessels(self, sites, leakiness, perfusion) -> None:
        """New capillaries at ``sites`` (flat) with wall ``leakiness`` factors and ``perfusion``
        shares, formed by
        angiogenesis (:meth:`tmesim.simulation.Simulation.remodel_vessels`). A site in a lumen
        filled by cancer cells becomes tissue: the lumen shrinks in place, so the cell kernels,
        which hold this lumen array, see the change."""
        sites = np.asarray(sites, dtype=np.int64)
        flat = self.codes.reshape(-1)
        in_lumen = self.lumen[sites]
        flat[sites] = geo.CAPILLARY
        self.perfused[sites] = True
        self.capillaries[sites] = True
        self.angiogenic[sites] = True
        self.leakiness[sites] = leakiness
        self.perfusion[sites] = perfusion
        if in_lumen.any():
            self.lumen[sites[in_lumen]] = False
            self._lumen_sites = np.flatnonzero(self.lumen)
            self.alveolar_surface = geo.alveolar_surface(
                self.codes.reshape(self.shape3)).reshape(-1)

    def face_neighbours(self, sites):
        """The face neighbours of ``sites`` (see :func:`tmesim.geometry.face_neighbours`)."""
        return geo.face_neighbours(sites, self.shape3)
