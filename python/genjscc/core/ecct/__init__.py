"""Error Correction Code Transformer: model, file format and decoder (see docs/ecct.md)."""

from genjscc.core.ecct.model import (
    ECCT,
    ECCTConfig,
    ECCTDecoder,
    ecct_attention_mask,
    load_ecct,
    save_ecct,
)

__all__ = ["ECCT", "ECCTConfig", "ECCTDecoder", "ecct_attention_mask", "load_ecct", "save_ecct"]
