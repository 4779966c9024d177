"""Monte-Carlo simulation of links: BER/BLER sweeps of codes and decoders (:mod:`.ber`)."""

from genjscc.core.sim.ber import (
    CHANNELS,
    BerPoint,
    default_batch_size,
    simulate_ber,
    uncoded_code,
)

__all__ = ["CHANNELS", "BerPoint", "default_batch_size", "simulate_ber", "uncoded_code"]
