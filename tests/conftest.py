"""Suite-wide settings.

Tests work on small tensors, where torch's intra-op threads cost more than they bring
(measured: test_bp.py 48 s with 2 threads, 8 s with 1 on the 2-core machine), and one thread
keeps float results independent of the machine's core count.
"""

import torch

torch.set_num_threads(1)
