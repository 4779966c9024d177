"""Suite-wide settings.

Tests work on small tensors, where torch's intra-op threads cost more than they bring
(measured: test_bp.py 48 s with 2 threads, 8 s with 1 on the 2-core machine), and one thread
keeps float results independent of the machine's core count.
"""

import torch

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Files with a test marked slow first (stable otherwise): with two xdist workers taking
    a file each (make test), a long file started last would run alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
