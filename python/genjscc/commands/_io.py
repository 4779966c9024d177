"""File plumbing shared by compress and decompress: ``-`` for stdin/stdout, atomic writes
of regular files (devices and FIFOs written through), OS errors as one-line user errors,
and a tqdm progress bar on stderr."""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from genjscc.errors import GenjsccError


def read_input(name: str) -> bytes:
    """All bytes of file ``name``, or of stdin for ``-``."""
    try:
        if name == "-":
            return sys.stdin.buffer.read()
        return Path(name).read_bytes()
    except OSError as error:
        raise GenjsccError(f"cannot read {name}: {error.strerror or error}") from error


def write_output(name: str, data: bytes) -> None:
    """Write ``data`` to file ``name``, or to stdout for ``-``.

    A regular file (or a new one) is replaced atomically: the data goes to a temporary file
    beside it, which then takes its name, so a failure leaves the old file or none, never a
    partial one; the new file keeps the old one's permissions. A symbolic link is followed:
    its target is replaced and the link stays. Anything else that exists (``/dev/null``,
    ``/dev/stdout``, a terminal, a FIFO) is opened and written through, as a shell's ``>``
    would. A failed write (``ENOSPC`` from a full disk or ``/dev/full``, ``EPIPE``, ...) is a
    GenjsccError naming the path.
    """
    try:
        if name == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        target = Path(os.path.realpath(name))  # a symlink's target; the link itself stays
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode):
            with open(target, "wb") as handle:  # a device or FIFO: write through
                handle.write(data)
            return
        _replace_atomically(target, data, mode)
    except OSError as error:
        raise GenjsccError(f"cannot write {name}: {error.strerror or error}") from error


def _replace_atomically(target: Path, data: bytes, mode: int | None) -> None:
    """Write ``data`` to a temporary file beside ``target`` and rename it to ``target``."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            # mkstemp makes 0600; keep the old file's mode, or what open() would give a new one
            os.fchmod(handle.fileno(), stat.S_IMODE(mode) if mode is not None
                      else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class ProgressBar:
    """A ``progress(done_now, total)`` callback drawing a tqdm bar on stderr when it is a
    terminal (``disable`` or a log file: none); a job of several passes gets a new bar when
    the previous one is full. ``total`` 0: unknown (the bar counts and shows the rate)."""

    def __init__(self, desc: str, unit: str, disable: bool = False) -> None:
        self.desc, self.unit, self.disable = desc, unit, disable
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None or (self.bar.total and self.bar.n >= self.bar.total):
            from tqdm import tqdm

            self.close()
            self.bar = tqdm(total=total or None, desc=self.desc, unit=self.unit,
                            unit_scale=True, file=sys.stderr,
                            disable=True if self.disable else None, leave=False)
        self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def with_bar(desc: str, unit: str, quiet: bool, job: Callable[[ProgressBar], bytes]):
    """Run ``job(bar)`` and close the bar whatever happens."""
    bar = ProgressBar(desc, unit, disable=quiet)
    try:
        return job(bar)
    finally:
        bar.close()
