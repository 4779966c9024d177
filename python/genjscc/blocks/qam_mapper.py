"""qam_mapper: PDU of bytes -> PDU of Gray-mapped complex symbols (genjscc.core.mapping)."""

from __future__ import annotations

import numpy as np
import pmt
import torch

from genjscc.blocks._meta import KEY_MODULATION, KEY_NUM_BITS
from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu
from genjscc.core.mapping import constellation

__all__ = ["INPUT_FORMATS", "qam_mapper"]

INPUT_FORMATS = ("packed", "unpacked")



def bits_from_bytes(data: np.ndarray, input_format: str) -> np.ndarray:
    """Bits (uint8 0/1) of a u8 PDU: packed = 8 bits per byte MSB first, unpacked = 1 per byte."""
    if input_format == "packed":
        return np.unpackbits(data)
    if data.max() > 1:
        raise PduError(
            "input_format='unpacked' expects one bit (0 or 1) per byte, got a byte > 1; "
            "use input_format='packed' for ordinary bytes"
        )
    return data


class qam_mapper(PduBlock):
    """Map a PDU of bits to a PDU of Gray-mapped, unit-energy complex symbols.

    Input (message port ``in``): PDU of u8. ``input_format="packed"``: 8 bits per byte, MSB
    first; ``"unpacked"``: one bit (0/1) per byte. The number of bits must be a multiple of
    the bits per symbol (e.g. a multiple of 3 bytes for packed 64-QAM).

    Output (message port ``out``): PDU of c32 symbols (``E|x|^2 = 1``; symbol index ``i``
    carries the bits of ``i`` MSB first, see docs/conventions.md). The metadata is the input's
    plus ``modulation`` (symbol, e.g. ``16qam``) and ``num_bits`` (long).

    Malformed messages are logged, counted (``num_errors()``) and dropped.
    """

    def __init__(self, modulation: str = "16qam", input_format: str = "packed"):
        PduBlock.__init__(self, "genjscc_qam_mapper")
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
        self.constellation = constellation(modulation)
        self.input_format = input_format

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, data = parse_pdu(msg, "u8")
        bits = bits_from_bytes(data, self.input_format)
        bps = self.constellation.bits_per_symbol
        if bits.size % bps:
            raise PduError(
                f"{bits.size} bits do not fill whole {self.constellation.name} symbols "
                f"({bps} bits each); pad the payload to a multiple of {bps} bits"
            )
        symbols = self.constellation.map(torch.from_numpy(bits)).numpy()
        meta = pmt.dict_add(meta, KEY_MODULATION, pmt.intern(self.constellation.name))
        meta = pmt.dict_add(meta, KEY_NUM_BITS, pmt.from_long(int(bits.size)))
        return make_pdu(meta, symbols.astype(np.complex64, copy=False))
