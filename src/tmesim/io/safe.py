"""Safe output files: checked paths, one writer per path, atomic replacement.

Every file tmesim writes (a run's HDF5 file, ensemble summaries, pictures, movies) goes through
:func:`atomic_output`:

* the path is checked first: no NUL or other control characters, not a folder, and an existing
  entry is replaced only with ``overwrite=True`` and only if it is a regular file (never a FIFO,
  a device, a socket or a symbolic link);
* an exclusive lock (``fcntl.flock`` on a hidden ``.NAME.lock`` beside the target) makes a
  second writer of the same path fail at once instead of both succeeding silently;
* the content is written under a temporary name in the target's folder and moved into place
  only when complete (``os.link`` when the target must not exist, so a file that appeared in the
  meantime is never clobbered; ``os.replace`` with ``overwrite``). A failure, a kill or a full
  disk therefore leaves the previous file untouched.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from ..errors import OutputError

__all__ = ["OutputLock", "atomic_output", "check_output_path", "commit", "partial_path"]


def partial_path(output) -> Path:
    """The name a run's file has while it is being written (``OUT.partial``)."""
    output = Path(output)
    return output.with_name(output.name + ".partial")


def check_output_path(path, *, overwrite: bool, create_parent: bool = True) -> Path:
    """Check that ``path`` may be written; create its folder when ``create_parent``.

    Raises :class:`~tmesim.errors.OutputError` (exit code 2) with the reason and a fix.
    """
    text = os.fspath(path)
    if not text or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise OutputError(
            f"output path {text!r} is empty or contains control characters (NUL, newline, ...)\n"
            "  fix: give a plain file name, e.g. -o results/out.h5"
        )
    p = Path(text)
    if p.name in ("", ".", ".."):
        raise OutputError(f"output path is a directory: {p}\n  fix: give a file name")
    try:
        st = os.lstat(p)
    except (FileNotFoundError, NotADirectoryError):
        st = None  # the folder checks below say what is wrong
    except OSError as exc:
        raise OutputError(
            f"cannot use the output path {p}: {exc.strerror}\n  fix: choose another name with -o"
        ) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise OutputError(
                f"output path is a directory: {p}\n  fix: give a file name, e.g. "
                f"-o {p / 'out.h5'}"
            )
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(
                f"output path exists and is not a regular file (a link, FIFO, device or "
                f"socket): {p}\n  fix: choose another name with -o; tmesim only ever replaces "
                "regular files"
            )
        if not overwrite:
            raise OutputError(
                f"output file already exists: {p}\n"
                "  fix: pass --overwrite to replace it, or choose another name with -o"
            )
    parent = p.parent
    if create_parent:
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the output folder {parent}: {exc.strerror}\n"
                "  fix: choose a location you can write to with -o"
            ) from None
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}\n  fix: create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(
            f"output location is not writable: {parent}\n"
            "  fix: choose a location you can write to with -o"
        )
    return p


class OutputLock:
    """An exclusive, non-blocking lock on writing ``path`` (a hidden ``.NAME.lock`` beside it).

    The lock is held by an open file description, so it ends with the process however it ends;
    a lock file left by a killed process is simply locked again by the next writer.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self.fd = None

    def acquire(self) -> OutputLock:
        import fcntl

        while True:
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise OutputError(
                    f"cannot create the lock file {self.lock_path}: {exc.strerror}\n"
                    "  fix: choose a location you can write to with -o"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputError(
                    f"another tmesim process is writing {self.path} right now\n"
                    "  fix: wait for it to finish, or choose another name with -o"
                ) from None
            # the holder before us may have removed the lock file after we opened it: only a
            # lock on the file that is still at lock_path counts
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_path))
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _fsync_path(path, directory=False) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    with contextlib.suppress(OSError):
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def commit(tmp, path, *, overwrite: bool) -> Path:
    """Move the finished file ``tmp`` to ``path`` (same folder) under the overwrite rule."""
    tmp, path = Path(tmp), Path(path)
    _fsync_path(tmp)
    if overwrite:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise OutputError(
                f"{path} became something other than a regular file while writing; the new "
                f"file is kept as {tmp}\n  fix: move {tmp} where you want it"
            )
        os.replace(tmp, path)
    else:
        try:
            os.link(tmp, path)  # fails if path exists: never clobber a file that appeared
        except FileExistsError:
            raise OutputError(
                f"{path} was created by something else while this output was written; the new "
                f"file is kept as {tmp}\n  fix: move {tmp} where you want it"
            ) from None
        except OSError:
            # a file system without hard links: check, then rename
            if os.path.lexists(path):
                raise OutputError(
                    f"{path} was created while this output was written; the new file is kept "
                    f"as {tmp}\n  fix: move {tmp} where you want it"
                ) from None
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
    _fsync_path(path.parent if str(path.parent) else ".", directory=True)
    return path


@contextlib.contextmanager
def atomic_output(path, *, overwrite: bool = False, create_parent: bool = False):
    """Write a file atomically: yields a temporary path in the target's folder (same suffix).

    On normal exit the temporary file is moved to ``path``; on any exception it is removed and
    whatever was at ``path`` before is left untouched.
    """
    path = check_output_path(path, overwrite=overwrite, create_parent=create_parent)
    with OutputLock(path):
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.stem[:40]}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(fd)
        tmp = Path(tmp)
        # mkstemp makes the file private (0600); give it the mode of any new file (0666 less
        # the umask), so that pictures and reports can be shared like the results they show
        umask = os.umask(0)
        os.umask(umask)
        with contextlib.suppress(OSError):
            os.chmod(tmp, 0o666 & ~umask)
        try:
            yield tmp
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise OutputError(f"nothing was written to {path}\n  fix: see the message above")
            commit(tmp, path, overwrite=overwrite)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
