"""Integer codes shared by kernels and their Python callers (plain constants, no configuration)."""

# cell kinds (``kind`` array)
TUMOR = 0
STEM = 1
TCELL = 2
MACROPHAGE = 3
FIBROBLAST = 4
MDSC = 5
N_KINDS = 6
KIND_NAMES = ("tumor", "stem", "tcell", "macrophage", "fibroblast", "mdsc")
#: the cancer kinds, in one place: the tumour burden, pushing, lumen entry, drug uptake and
#: every response of stroma and vessels to "the tumour" read these (the kernels through
#: ``neighbourhood.is_cancer``, Python through ``kinds.cancer``)
CANCER_CODES = (TUMOR, STEM)
#: ``CANCER_CODES`` as a bit mask (bit ``k`` set for cancer kind ``k``)
CANCER_MASK = sum(1 << k for k in CANCER_CODES)

# how a kind's release into the fields scales per cell (``activity_by_kind`` of
# ``lattice.exchange_maps``): 1, and the hypoxic factor when quiescent; the engagement (``aux``)
# of an active cell; the M2 activity ``max(0, 2 p - 1)`` of the polarisation ``p``
# (``phenotype``); the activation (``phenotype``)
ACT_PLAIN = 0
ACT_ENGAGEMENT = 1
ACT_M2 = 2
ACT_ACTIVATION = 3
ACTIVITY_NAMES = ("plain", "engagement", "m2", "activation")

# cell states (``state`` array)
PROLIFERATING = 0
QUIESCENT = 1
NECROTIC = 2
REMOVED = 3
STATE_NAMES = ("proliferating", "quiescent", "necrotic", "removed")
