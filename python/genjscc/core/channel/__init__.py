"""Channel models and SNR bookkeeping (see docs/conventions.md).

* :mod:`.snr` the one place that converts between SNR, Es/N0 and Eb/N0.
* :mod:`.awgn` real and complex AWGN.
* :mod:`.fading` Rayleigh block fading, LS pilot estimation, zero-forcing equalization.
* :mod:`.packet_loss` Gilbert-Elliott and general Markov packet loss.
* :mod:`.ofdm` OFDM channel estimation: smoothing the per-carrier channel taps.
"""

from genjscc.core.channel.awgn import AWGN, add_awgn
from genjscc.core.channel.fading import RayleighBlockFading, equalize, estimate_channel_ls
from genjscc.core.channel.packet_loss import GilbertElliott, MarkovPacketLoss, burst_lengths
from genjscc.core.channel.snr import (
    analog_info_bits_per_channel_use,
    db_to_linear,
    ebno_to_esno_db,
    ebno_to_snr_db,
    esno_to_ebno_db,
    linear_to_db,
    noise_var_from_ebno_db,
    noise_var_from_esno_db,
    snr_to_ebno_db,
)

__all__ = [
    "AWGN",
    "GilbertElliott",
    "MarkovPacketLoss",
    "RayleighBlockFading",
    "add_awgn",
    "analog_info_bits_per_channel_use",
    "burst_lengths",
    "db_to_linear",
    "ebno_to_esno_db",
    "ebno_to_snr_db",
    "equalize",
    "esno_to_ebno_db",
    "estimate_channel_ls",
    "linear_to_db",
    "noise_var_from_ebno_db",
    "noise_var_from_esno_db",
    "snr_to_ebno_db",
]
