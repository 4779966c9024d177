"""File plumbing shared by compress and decompress: ``-`` for stdin/stdout, atomic writes,
OS errors as one-line user errors, and a tqdm progress bar on stderr."""

from __future__ import annotations

import os
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
    """Write ``data`` to file ``name`` (atomically: a failure leaves no partial file) or stdout."""
    try:
        if name == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        target = Path(name)
        fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".",
                                   prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise GenjsccError(f"cannot write {name}: {error.strerror or error}") from error


class ProgressBar:
    """A ``progress(done_now, total)`` callback drawing a tqdm bar on stderr."""

    def __init__(self, desc: str, unit: str, disable: bool = False) -> None:
        self.desc, self.unit, self.disable = desc, unit, disable
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit, unit_scale=True,
                            file=sys.stderr, disable=self.disable, leave=False)
        self.bar.update(done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def with_bar(desc: str, unit: str, quiet: bool, job: Callable[[ProgressBar], bytes]):
    """Run ``job(bar)`` and close the bar whatever happens."""
    bar = ProgressBar(desc, unit, disable=quiet)
    try:
        return job(bar)
    finally:
        bar.close()
