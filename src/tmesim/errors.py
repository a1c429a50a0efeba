"""Exceptions raised by tmesim.

Every error a user can cause derives from :class:`TmesimError` and carries a message that says
what is wrong and how to fix it. The command line prints such errors without a traceback.
"""

from __future__ import annotations

__all__ = [
    "OutputError",
    "ScenarioError",
    "SimulationError",
    "TmesimError",
    "TmesimWarning",
    "UsageError",
    "WriteError",
    "warn",
]


class TmesimError(Exception):
    """Base class of all errors tmesim raises on purpose."""

    #: exit code the command line uses for this kind of error
    exit_code = 1


class ScenarioError(TmesimError):
    """A scenario file, an override or a parameter is invalid.

    Attributes
    ----------
    file : str or None
        The file the bad value came from (``"--set"`` for a command-line override).
    key : str or None
        The dotted key path, e.g. ``time.duration_h``.
    value : object
        The offending value (``None`` when the key is missing).
    expected : str
        What a valid value looks like.
    fix : str
        One sentence on how to correct it.
    """

    exit_code = 2

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        value: object = None,
        expected: str | None = None,
        fix: str | None = None,
        has_value: bool = True,
    ):
        self.problem = problem
        self.file = file
        self.line = line
        self.key = key
        self.value = value
        self.expected = expected
        self.fix = fix
        self.has_value = has_value
        super().__init__(self.format())

    def format(self) -> str:
        """Return the multi-line, human-readable message."""
        where = self.file or "<scenario>"
        if self.line is not None:
            where = f"{where}, line {self.line}"
        lines = [self.problem, f"  file:     {where}"]
        if self.key:
            lines.append(f"  key:      {self.key}")
        if self.has_value and self.key:
            lines.append(f"  value:    {self.value!r}")
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.fix:
            lines.append(f"  fix:      {self.fix}")
        return "\n".join(lines)


class UsageError(TmesimError):
    """The command line was used wrongly (missing file, existing output, bad flag value)."""

    exit_code = 2


class OutputError(UsageError):
    """The output location cannot be written, or would overwrite a file without permission."""


class SimulationError(TmesimError):
    """The simulation reached an invalid state (NaN, infinity or negative concentration, ...)."""

    exit_code = 1


class WriteError(TmesimError):
    """Writing a result failed (a full disk, a file-size limit, an I/O error).

    The HDF5 library cannot always close a file cleanly after a failed write, so the command
    line ends the process right after printing this error (``abandon_process``); the file being
    written is the ``.partial`` one, and the previous result is untouched.
    """

    exit_code = 1
    abandon_process = True


class TmesimWarning(UserWarning):
    """Something is probably not what the user meant, but the command can go on."""


def warn(message: str) -> None:
    """Issue a :class:`TmesimWarning` (the command line prints it as one ``warning:`` line)."""
    import warnings

    warnings.warn(message, TmesimWarning, stacklevel=2)
