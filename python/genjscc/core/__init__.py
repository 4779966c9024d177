"""The science of gr-genjscc: batched torch/numpy components that never import GNU Radio.

Nothing here imports blocks, serve, commands, train or demo (docs/design.md; checked by
tests/test_layering.py); errors name the parameters a Python caller passes, not CLI flags.
Shared helpers: :mod:`.threads` (torch thread count), :mod:`.plotting` (headless pyplot).

Conventions shared by every module (see docs/conventions.md):

* LLR = ln P(b = 0 | y) / P(b = 1 | y): positive means bit 0 is more likely.
* BPSK maps bit 0 -> +1 and bit 1 -> -1 (so sign(LLR) equals sign of the symbol).
* Constellations have unit average energy Es = 1; complex AWGN has variance N0 in total
  (N0/2 per real dimension), so Es/N0 = 1/N0 = the SNR per complex channel use.
"""
