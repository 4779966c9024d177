"""text_jscc_encoder/decoder and lm_sentence_encoder/decoder in real flowgraphs with
pdu_channel: round trips, lost sentences (marked and counted), malformed PDUs (counted, the
graph keeps running)."""

from __future__ import annotations

import numpy as np
import pmt
import pytest
import torch

from flowgraph_helpers import run_chain
from gnuradio import genjscc

pytestmark = pytest.mark.flowgraph

SENTENCES = ["the committee adopted the report without a vote",
             "we must protect the freedom of the press in europe",
             "naïve words like qwzx are sent too"]
JSCC_MODEL = "text-jscc-small"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def text_of(msg) -> str:
    return np.asarray(pmt.to_python(pmt.cdr(msg)), dtype=np.uint8).tobytes().decode("utf-8")


def meta_ref(msg, key):
    return pmt.to_python(pmt.dict_ref(pmt.car(msg), pmt.intern(key), pmt.PMT_NIL))


def test_lm_sentence_pair_round_trip_and_lost_sentences():
    enc = genjscc.lm_sentence_encoder("lm-sscc-ecct", "small")
    dec = genjscc.lm_sentence_decoder("lm-sscc-ecct", "small")
    good = genjscc.pdu_channel("awgn", 12.0, seed=1)
    out = run_chain([enc, good, dec], [genjscc.text_pdu(s) for s in SENTENCES], 3)
    assert [text_of(m) for m in out] == SENTENCES
    assert all(meta_ref(m, "text_ok") is True for m in out)

    dec2 = genjscc.lm_sentence_decoder("lm-sscc-ecct", "small", placeholder="<lost>")
    bad = genjscc.pdu_channel("awgn", -8.0, seed=1)
    out = run_chain([enc, bad, dec2], [genjscc.text_pdu(s) for s in SENTENCES[:2]], 2)
    assert [text_of(m) for m in out] == ["<lost>"] * 2
    assert [meta_ref(m, "text_ok") for m in out] == [False, False]
    assert dec2.num_lost() == 2


def test_lm_sentence_blocks_count_malformed_pdus():
    enc = genjscc.lm_sentence_encoder("lm-sscc-bp", "small")
    dec = genjscc.lm_sentence_decoder("lm-sscc-bp", "small", snr_db=10.0)
    bad_text = pmt.cons(pmt.make_dict(), pmt.to_pmt(np.array([0xFF, 0xFE], dtype=np.uint8)))
    no_bits = pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(49, dtype=np.complex64)))
    run_chain([enc], [bad_text], 0)
    run_chain([dec], [no_bits], 0)
    assert enc.num_errors() == 1 and dec.num_errors() == 1


def test_text_jscc_pair_through_a_channel():
    enc = genjscc.text_jscc_encoder(JSCC_MODEL)
    dec = genjscc.text_jscc_decoder(JSCC_MODEL)
    chan = genjscc.pdu_channel("awgn", 25.0, seed=2)
    out = run_chain([enc, chan, dec], [genjscc.text_pdu(s) for s in SENTENCES[:2]], 2)
    assert len(out) == 2
    for msg, sent in zip(out, SENTENCES, strict=False):
        words = text_of(msg).split()
        hits = sum(w in sent.split() for w in words)
        assert hits >= 0.8 * len(sent.split()), text_of(msg)
        assert meta_ref(msg, "snr_db") == pytest.approx(25.0, abs=0.01)


def test_text_jscc_decoder_refuses_pdus_without_snr():
    dec = genjscc.text_jscc_decoder(JSCC_MODEL)
    y = pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(12, dtype=np.complex64)))
    wrong = pmt.cons(pmt.make_dict(), pmt.to_pmt(np.ones(7, dtype=np.complex64)))
    run_chain([dec], [y, wrong], 0)
    assert dec.num_errors() == 2
