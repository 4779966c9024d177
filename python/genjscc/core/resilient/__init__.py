"""Loss-resilient learned image transmission over packet-erasure links (docs/resilient.md).

A token image codec (:mod:`.model`: convolutional transforms around FSQ tokens and a masked
token transformer that conceals lost tokens), packets that decode in any subset (:mod:`.packets`:
interleaving, a static integer range-coding table, exact on every machine), the codec joining
them (:mod:`.codec`), the HEIF + erasure-code baseline (:mod:`.baseline`) and the loss
evaluation (:mod:`.evaluate`).
"""

from genjscc.core.resilient.codec import (
    DEFAULT_MODEL,
    DEFAULT_PACKET_BYTES,
    DecodeReport,
    ResilientCodec,
    load_codec,
)

__all__ = ["DEFAULT_MODEL", "DEFAULT_PACKET_BYTES", "DecodeReport", "ResilientCodec",
           "load_codec"]
