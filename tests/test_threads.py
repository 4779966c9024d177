"""genjscc.core.threads.torch_threads: the one thread-pinning helper."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from genjscc.core.threads import torch_threads


def test_pins_and_restores_the_count() -> None:
    before = torch.get_num_threads()
    with torch_threads(2):
        assert torch.get_num_threads() == 2
        with torch_threads(2):  # the same count nests
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads must be a positive integer"), \
                torch_threads(bad):
            pass


def test_another_count_waits_until_the_first_body_is_done() -> None:
    seen: list[tuple[str, int]] = []
    entered = threading.Event()

    def first() -> None:
        with torch_threads(2):
            entered.set()
            time.sleep(0.3)
            seen.append(("first", torch.get_num_threads()))

    worker = threading.Thread(target=first)
    worker.start()
    entered.wait(5)
    with torch_threads(3):  # waits for `first` to leave, then pins its own count
        seen.append(("second", torch.get_num_threads()))
    worker.join(5)
    assert seen == [("first", 2), ("second", 3)]
