"""GNU Radio blocks: thin PDU/stream plumbing around genjscc.core.

``from gnuradio import genjscc`` re-exports these names, so GRC and scripts write
``genjscc.qam_mapper(...)``.
"""

from genjscc.blocks.burst_ofdm import burst_ofdm_rx, burst_ofdm_tx
from genjscc.blocks.channel_emulator import channel_emulator
from genjscc.blocks.ecct_decoder import ecct_decoder
from genjscc.blocks.jscc import (
    image_pdu,
    jscc_image_decoder,
    jscc_image_encoder,
    sample_image_path,
)
from genjscc.blocks.jscc_ofdm import ofdm_jscc_rx
from genjscc.blocks.ldpc import ldpc_decoder, ldpc_encoder
from genjscc.blocks.lm_source import lm_source_decoder, lm_source_encoder
from genjscc.blocks.mcs_selector import mcs_selector
from genjscc.blocks.ofdm import ofdm_qam_rx, ofdm_qam_tx
from genjscc.blocks.pdu_channel import pdu_channel
from genjscc.blocks.qam_mapper import qam_mapper
from genjscc.blocks.resilient_image import resilient_image_decoder, resilient_image_encoder
from genjscc.blocks.soft_demapper import soft_demapper
from genjscc.blocks.text import (
    lm_sentence_decoder,
    lm_sentence_encoder,
    text_jscc_decoder,
    text_jscc_encoder,
    text_pdu,
)

__all__ = [
    "burst_ofdm_rx",
    "burst_ofdm_tx",
    "channel_emulator",
    "ecct_decoder",
    "image_pdu",
    "jscc_image_decoder",
    "jscc_image_encoder",
    "ldpc_decoder",
    "ldpc_encoder",
    "lm_sentence_decoder",
    "lm_sentence_encoder",
    "lm_source_decoder",
    "lm_source_encoder",
    "mcs_selector",
    "ofdm_jscc_rx",
    "ofdm_qam_rx",
    "ofdm_qam_tx",
    "pdu_channel",
    "qam_mapper",
    "resilient_image_decoder",
    "resilient_image_encoder",
    "sample_image_path",
    "soft_demapper",
    "text_jscc_decoder",
    "text_jscc_encoder",
    "text_pdu",
]
