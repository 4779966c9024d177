"""The science of gr-genjscc: batched torch/numpy components that never import GNU Radio.

Conventions shared by every module (see docs/conventions.md):

* LLR = ln P(b = 0 | y) / P(b = 1 | y): positive means bit 0 is more likely.
* BPSK maps bit 0 -> +1 and bit 1 -> -1 (so sign(LLR) equals sign of the symbol).
* Constellations have unit average energy Es = 1; complex AWGN has variance N0 in total
  (N0/2 per real dimension), so Es/N0 = 1/N0 = the SNR per complex channel use.
"""
