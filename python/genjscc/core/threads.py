"""The one way to pin torch's intra-op thread count around a piece of work.

torch's thread count is process-wide: every thread of the process (a flowgraph's blocks, a
server's workers) shares it. :func:`torch_threads` sets it for the body and restores it after,
and lets several threads of one process pin it at the same time: bodies asking for the same
count run together, one asking for another count waits until they are done, and the count is
restored when the last one leaves.

Two reasons to pin it: reproducible floats (a multi-threaded kernel may split a reduction
differently, so LM coding stores its count in the container) and speed (the BP decoders'
mid-sized ops ran 10 to 50 times faster with one thread than two on a busy 2-core machine,
docs/amc.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

__all__ = ["torch_threads"]

_LOCK = threading.Condition()
_users = 0  # bodies inside torch_threads now (all with the same count)
_count = 0  # the count they share
_before = 0  # torch's count before the first of them entered


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)``, restoring the previous count after
    (None: leave the count alone). Thread-safe; see the module docstring.

    Raises:
        ValueError: ``threads`` is not a positive integer or None.
    """
    global _users, _count, _before
    if threads is None:
        yield
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    with _LOCK:
        _LOCK.wait_for(lambda: _users == 0 or _count == threads)
        if _users == 0:
            _before, _count = torch.get_num_threads(), threads
            torch.set_num_threads(threads)
        _users += 1
    try:
        yield
    finally:
        with _LOCK:
            _users -= 1
            if _users == 0:
                torch.set_num_threads(_before)
                _LOCK.notify_all()
