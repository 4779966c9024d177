"""NaN and infinity into the ECCT decoder block and the soft demapper: the PDU is refused,
logged and counted (the inference server's rule for non-finite LLRs), never decoded."""

from __future__ import annotations

import numpy as np
import pmt
import pytest

from genjscc.blocks._pdu import PduError
from gnuradio import genjscc


def pdu(data: np.ndarray) -> pmt.pmt_base:
    return pmt.cons(pmt.make_dict(), pmt.to_pmt(data))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_ecct_block_refuses_non_finite_llrs(bad: float) -> None:
    block = genjscc.ecct_decoder(code="POLAR_N64_K32")
    llr = np.full(2 * 64, 5.0, np.float32)
    llr[70] = bad
    block._handle(pdu(llr))  # what the message port does
    assert block.num_errors() == 1 and block.num_codewords() == 0
    llr[70] = 5.0
    assert block.process(pdu(llr)) is not None and block.num_codewords() == 2


@pytest.mark.parametrize("bad", [complex(np.nan, 0.0), complex(0.0, np.inf)])
def test_the_soft_demapper_refuses_non_finite_symbols(bad: complex) -> None:
    block = genjscc.soft_demapper(modulation="qpsk", noise_var=0.1)
    y = np.full(8, (1 + 1j) / np.sqrt(2), np.complex64)
    y[3] = bad
    with pytest.raises(PduError, match="NaN or infinite"):
        block.process(pdu(y))
    block._handle(pdu(y))
    assert block.num_errors() == 1
    y[3] = 1.0
    llr = pmt.to_python(pmt.cdr(block.process(pdu(y))))
    assert np.isfinite(llr).all() and llr.size == 16
