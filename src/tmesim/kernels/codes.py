"""Integer codes shared by kernels and their Python callers (plain constants, no configuration)."""

# cell kinds (``kind`` array)
TUMOR = 0
STEM = 1
TCELL = 2
MACROPHAGE = 3
FIBROBLAST = 4
N_KINDS = 5
KIND_NAMES = ("tumor", "stem", "tcell", "macrophage", "fibroblast")

# cell states (``state`` array)
PROLIFERATING = 0
QUIESCENT = 1
NECROTIC = 2
REMOVED = 3
STATE_NAMES = ("proliferating", "quiescent", "necrotic", "removed")
