"""HDF5 output: :class:`ResultWriter` writes a run record by record, :func:`load` reads it."""

from .results import Results, load
from .writer import FORMAT, FORMAT_VERSION, ResultWriter

__all__ = ["FORMAT", "FORMAT_VERSION", "ResultWriter", "Results", "load"]
