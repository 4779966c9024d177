"""The shortcuts that make text-eval fast give the same results as the plain computations:
the bit-parallel edit distance, the ECCT decoder's syndrome exit, the LM coding of sentences
in groups of similar length and the text JSCC's symbols encoded once (docs/text.md)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.text.metrics import _levenshtein_table, levenshtein
from genjscc.core.text.sscc import LMSentenceSource, SentenceChannelCode, scheme_config


def test_levenshtein_equals_the_table_on_random_strings():
    rng = random.Random(7)
    alphabet = "ab c\u00e9\U0001f600"
    for _ in range(3000):
        a = "".join(rng.choice(alphabet[:rng.randint(1, 6)]) for _ in range(rng.randint(0, 30)))
        b = "".join(rng.choice(alphabet[:rng.randint(1, 6)]) for _ in range(rng.randint(0, 30)))
        if rng.random() < 0.3:  # a shared prefix and suffix around an edit
            cut = rng.randint(0, len(a))
            b = a[:cut] + b[:3] + a[rng.randint(cut, len(a)):]
        assert levenshtein(a, b) == _levenshtein_table(a, b), (a, b)
    long_a = "".join(rng.choice("abcdefgh ") for _ in range(400))  # wider than a machine word
    long_b = "".join(rng.choice("abcdefgh ") for _ in range(350))
    assert levenshtein(long_a, long_b) == _levenshtein_table(long_a, long_b)


def _noisy_llrs(code, ebno_db: float, words: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random codewords and their BPSK/AWGN LLRs ``2 y / sigma^2`` at ``ebno_db``."""
    gen = torch.Generator().manual_seed(seed)
    info = torch.randint(0, 2, (words, code.k), generator=gen, dtype=torch.uint8)
    sent = code.encode(info)
    sigma2 = 1.0 / (2.0 * code.k / code.n * 10.0 ** (ebno_db / 10.0))
    y = 1.0 - 2.0 * sent.float() + math.sqrt(sigma2) * torch.randn(words, code.n, generator=gen)
    return sent, 2.0 * y / sigma2


def test_ecct_syndrome_exit_agrees_with_the_full_decoder():
    torch.set_num_threads(1)
    code = get_code("LDPC_N49_K24")
    full = make_decoder("ecct", code)
    fast = make_decoder("ecct", code, syndrome_exit=True)
    assert fast.syndrome_exit and not full.syndrome_exit
    h = torch.as_tensor(code.H, dtype=torch.float32)
    for ebno_db in (4.0, 7.0):  # few and many words that already satisfy every check
        sent, llr = _noisy_llrs(code, ebno_db, 300, seed=int(ebno_db))
        hard = (llr < 0).to(torch.uint8)
        valid = ~torch.remainder(hard.float() @ h.T, 2.0).any(-1)
        assert 0 < int(valid.sum()) < len(valid)
        out = fast(llr)
        assert torch.equal(out[valid], hard[valid])  # skipped: the hard decisions
        assert torch.equal(out, full(llr))  # and the full decoder decodes the same words
        if ebno_db == 4.0:
            assert bool((out != sent).any())  # not a trivially clean channel
    assert torch.equal(fast(llr[:0]), full(llr[:0]))


def test_sscc_chain_uses_the_syndrome_exit_for_ecct_only():
    ecct = SentenceChannelCode(scheme_config("lm-sscc-ecct"))
    assert ecct._fixed[1].syndrome_exit
    bp = SentenceChannelCode(scheme_config("lm-sscc-bp"))
    assert bp._fixed[1].early_stop  # BP's own exit at zero syndrome


@pytest.fixture(scope="module")
def source() -> LMSentenceSource:
    torch.set_num_threads(1)
    return LMSentenceSource("small", rows=4)


def test_lm_payloads_do_not_depend_on_the_grouping(source):
    """The chain sorts sentences by length and steps them 4 at a time: each stream is the
    one its sentence gets alone."""
    texts = ["a short one", "x" * 300 + " a long sentence", "mid length sentence here", "",
             "tiny", "another sentence of some length", "with a\nnewline"]
    streams = source.encode(texts)
    alone = [LMSentenceSource("small", rows=1).encode([t])[0] for t in texts]
    assert all(np.array_equal(a, b) for a, b in zip(streams, alone, strict=True))
    assert source.decode(streams) == texts


def test_text_jscc_symbols_encoded_once_equal_the_per_sentence_encoding():
    from genjscc.core.text.evaluate import make_scheme

    scheme = make_scheme("deepsc")
    texts = ["the house is red", "we agree with the commission on this point today",
             "zq unseen wordz"]
    scheme.prepare(texts)
    (rows, _, x), = scheme._batches
    for r, i in enumerate(rows):
        alone = scheme.model.encode_text(texts[i])
        torch.testing.assert_close(x[r, :len(alone)], alone, atol=1e-5, rtol=1e-4)
        assert not bool(x[r, len(alone):].abs().any())
