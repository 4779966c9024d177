"""Text over the air: tokenizer, metrics and energy accounting, the LM-SSCC chain, the shipped
text JSCC, and genjscc text-eval (docs/text.md)."""

from __future__ import annotations

import json
import math
import re
from importlib import resources

import pytest
import torch

from genjscc.core.text.evaluate import SSCCScheme, evaluate_schemes, make_scheme, unified_snr_db
from genjscc.core.text.metrics import bleu, cer, esn0_db_for, exact_fraction, levenshtein
from genjscc.core.text.sscc import (
    PRESETS,
    LMSentenceSource,
    SentenceChannelCode,
    pack_frame,
    parse_stream,
)


def milton_sentences(count: int = 50) -> list[str]:
    """Sentences of the shipped Areopagitica excerpt in DeepSC's form (lowercase letters and
    spaces, 4-30 words): text neither lm-small nor the text JSCC trained on."""
    text = resources.files("genjscc.data.text").joinpath("areopagitica-excerpt.txt").read_text()
    out = []
    for piece in re.split(r"[.;:?!,()]", text):
        words = re.sub(r"[^a-z ]", " ", piece.lower()).split()
        if 4 <= len(words) <= 30:
            out.append(" ".join(words))
    assert len(out) >= count
    return out[:count]


@pytest.fixture(scope="module")
def source() -> LMSentenceSource:
    torch.set_num_threads(1)
    return LMSentenceSource("small")


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return milton_sentences(50)


# ----------------------------------------------------------------------------- metrics


def test_metrics_against_hand_values():
    assert levenshtein("kitten", "sitting") == 3
    assert cer(["abcd", "xy"], ["abcd", ""]) == pytest.approx(2 / 6)
    assert exact_fraction(["a b", "c d"], ["a b", "c"]) == 0.5
    refs = ["the cat sat on the mat", "a dog barked at the moon tonight"]
    assert bleu(refs, refs, 4) == pytest.approx(1.0)
    assert bleu(refs, ["", ""], 1) == 0.0
    with pytest.raises(ValueError, match="as many"):
        bleu(refs, ["x"])


def test_energy_per_word_hand_computation():
    # 12 words in 30 channel uses at Ew/N0 = 10 dB: Es/N0 = 10 * 12 / 30 = 4 -> 6.0206 dB
    assert esn0_db_for(10.0, 30, 12) == pytest.approx(10 * math.log10(4.0))
    # unified SNR: 12 words carrying 96 information bits -> Eb/(N0/2) = 10 * 12 / 96 * 2
    assert unified_snr_db(10.0, 12, 96) == pytest.approx(10 * math.log10(2.5))
    with pytest.raises(ValueError, match="must be > 0"):
        esn0_db_for(10.0, 0, 12)


def test_sscc_channel_uses_and_symbol_energy_by_hand(source):
    text = "the committee adopted the report"
    stream = source.encode([text])[0]
    bits = len(stream)
    cases = {  # scheme -> complex channel uses computed by hand
        "lm-sscc-bp": math.ceil(bits / 24) * 49,  # LDPC(49,24) codewords, BPSK
        "lm-sscc-polar-bp": math.ceil(bits / 32) * 64,  # Polar(64,32), BPSK
        "lm-sscc": 2 * round(bits / (0.5 * 2)) // 2,  # 5G NR, E = 2 round(k / (R 2)), QPSK
    }
    for name, uses in cases.items():
        code = SentenceChannelCode(PRESETS[name])
        x = code.encode(stream)
        assert len(x) == uses == code.channel_uses(bits), name
        # unit energy per channel use: the sentence costs exactly `uses` symbol energies
        assert float((x.abs() ** 2).sum()) == pytest.approx(uses, rel=1e-5)


def test_evaluation_runs_each_sentence_at_its_own_esn0(source):
    texts = ["one two three four", "one two three four five six seven eight"]
    scheme = SSCCScheme("lm-sscc-bp", source)
    scheme.prepare(texts)
    uses = scheme.channel_uses()
    row = evaluate_schemes(texts, [scheme], "awgn", [30.0])[0]
    assert row["channel_uses_per_word"] == pytest.approx(sum(uses) / 12, abs=1e-3)
    assert row["esn0_db"] == pytest.approx(30 - 10 * math.log10(sum(uses) / 12), abs=1e-3)
    assert row["exact"] == 1.0 and row["lost"] == 0


# ----------------------------------------------------------------------------- LM-SSCC


def test_frames_check_their_crc():
    frame = pack_frame(5, b"\x01\x02\x03\x04")
    assert parse_stream(frame + frame) == [(5, b"\x01\x02\x03\x04")] * 2
    bad = bytearray(frame)
    bad[3] ^= 0x10
    assert parse_stream(bytes(bad)) is None
    assert parse_stream(frame[:-1]) is None
    with pytest.raises(ValueError, match="whole 32-bit words"):
        pack_frame(3, b"\x00")


@pytest.mark.parametrize("name", ["lm-sscc", "lm-sscc-ecct"])
def test_lm_sscc_is_exact_at_high_energy(source, sentences, name):
    rows = evaluate_schemes(sentences, [SSCCScheme(name, source)], "awgn", [25.0])
    assert rows[0]["exact"] == 1.0 and rows[0]["lost"] == 0 and rows[0]["cer"] == 0.0


def test_lm_sscc_loses_sentences_at_low_energy_and_says_so(source, sentences):
    row = evaluate_schemes(sentences[:10], [SSCCScheme("lm-sscc", source)], "awgn", [0.0])[0]
    assert row["lost"] == 10 and row["exact"] == 0.0 and row["cer"] == 1.0


def test_lm_sscc_unseen_empty_long_and_multiline_inputs(source):
    long = " ".join(f"zq{i}xv" for i in range(1000))  # 1000 unseen words
    texts = ["naïve façade ☃ qwzx", "", long, "two\nlines"]
    streams = source.encode(texts)
    # an empty sentence: the form bit, the newline's payload bits, the CRC
    assert streams[1][0] == 0 and 1 + 16 < len(streams[1]) <= 1 + 16 + 32
    assert streams[2][0] == 0 and streams[3][0] == 1  # a newline inside: framed form
    code = SentenceChannelCode(PRESETS["lm-sscc"])
    ys = [code.encode(s) for s in streams]
    out = code.decode(ys, [1e-3] * len(ys), [len(s) for s in streams])
    assert source.decode(out) == texts
    for stream in streams:  # a cut or flipped stream is lost, never garbage
        assert source.decode([stream[:-1]]) == [None]
        flipped = stream.copy()
        flipped[len(stream) // 2] ^= 1
        assert source.decode([flipped]) == [None]
    with pytest.raises(TypeError, match="str"):
        source.encode([b"bytes"])


def test_sentences_are_coded_after_the_shared_prompt(source, sentences):
    """Both ends condition the LM on SENTENCE_CONTEXT: a receiver with another prompt loses
    the sentence (CRC-checked, never wrong text); without a prompt sentences cost more."""
    texts = [*sentences[:6], "two\nlines"]  # the terminated form and the framed one
    streams = source.encode(texts)
    assert LMSentenceSource("small").decode(streams) == texts
    other = LMSentenceSource("small", context="")
    assert other.decode(streams) == [None] * 7
    assert sum(map(len, other.encode(texts))) > sum(map(len, streams))


def test_terminated_stream_is_near_the_information_content(source, sentences):
    """The terminated form spends at most the LM's information content of the sentence and
    its newline plus 2 bits of coder termination, 1 form bit and 16 CRC bits (fewer when the
    coder's final interval holds a short binary fraction)."""
    from genjscc.core.source.coding import _steps, _weights

    lm = source.lm
    for text in sentences[:8]:
        symbols = lm.tokenize((text + "\n").encode())
        steps, info = _steps(lm, 1, len(symbols), source.context), 0.0
        probs = next(steps)
        for t, symbol in enumerate(symbols):
            q = _weights(probs, [0], 1)[0] + 1.0
            info += 24 - math.log2(q[symbol])
            probs = steps.send([symbol]) if t + 1 < len(symbols) else None
        assert len(source.encode([text])[0]) - 17 <= info + 2


def test_evaluation_rejects_sentences_without_words(source):
    with pytest.raises(ValueError, match="no words"):
        evaluate_schemes(["a b c", "  "], [SSCCScheme("lm-sscc", source)], "awgn", [10.0])
    with pytest.raises(ValueError, match="unknown text scheme"):
        make_scheme("lm-sscc-turbo")


# ----------------------------------------------------------------------------- text JSCC


@pytest.fixture(scope="module")
def deepsc():
    return make_scheme("deepsc")


def test_shipped_text_jscc_at_high_snr(deepsc, sentences):
    row = evaluate_schemes(sentences, [deepsc], "awgn", [40.0])[0]
    assert row["bleu1"] > 0.9, row
    model = deepsc.model
    x = model.encode_text(sentences[0])
    assert len(x) == model.channel_uses(sentences[0])
    assert float((x.abs() ** 2).sum()) == pytest.approx(len(x), rel=1e-4)


def test_text_jscc_energy_accounting_by_hand(deepsc):
    text = "the parliament adopted the resolution"
    tokens = deepsc.model.tokenizer.encode(text)
    uses = len(tokens) * deepsc.model.config.channel_uses_per_token
    row = evaluate_schemes([text], [deepsc], "awgn", [12.0])[0]
    assert row["channel_uses_per_word"] == pytest.approx(uses / 5, abs=1e-3)
    assert row["esn0_db"] == pytest.approx(12.0 - 10 * math.log10(uses / 5), abs=1e-3)
    assert row["unified_snr_db"] == pytest.approx(
        12.0 + 10 * math.log10(5 / (64 * uses)) + 10 * math.log10(2), abs=1e-3)


def test_text_jscc_unseen_empty_and_long_inputs(deepsc):
    model = deepsc.model
    assert len(model.encode_text("")) == 0 and model.decode_text(torch.zeros(0), 10.0) == ""
    odd = "qxzv naïve ☃"
    assert model.tokenizer.decode(model.tokenizer.encode(odd)) == odd  # byte fallback
    long = " ".join(["the council and the commission"] * 200)  # 1000 words
    x = model.encode_text(long)
    assert len(x) == model.channel_uses(long) > model.config.max_tokens * \
        model.config.channel_uses_per_token
    out = model.decode_text(x, 40.0)
    assert len(out.split()) == pytest.approx(1000, rel=0.05)
    with pytest.raises(ValueError, match="multiple of"):
        model.decode_text(torch.zeros(5, dtype=torch.complex64), 10.0)


# ----------------------------------------------------------------------------- CLI


def test_text_eval_cli_json_and_errors(tmp_path, capsys, sentences):
    from genjscc.cli import main

    path = tmp_path / "s.txt"
    path.write_text("\n".join(sentences[:4]) + "\n\n")
    assert main(["text-eval", "--sentences", str(path), "--schemes", "lm-sscc-bp,deepsc",
                 "--ew-n0", "10,30", "--json"]) == 0
    captured = capsys.readouterr()
    rows = json.loads(captured.out)
    # a status line per finished row on stderr (progress for long runs), none with -q
    assert captured.err.count("text-eval: ") == 4 and "lm-sscc-bp awgn Ew/N0 30 dB" in captured.err
    assert [(r["scheme"], r["ew_n0_db"]) for r in rows] == [
        ("lm-sscc-bp", 10.0), ("lm-sscc-bp", 30.0), ("deepsc", 10.0), ("deepsc", 30.0)]
    for key in ("scheme", "channel", "ew_n0_db", "esn0_db", "channel_uses_per_word", "bleu1",
                "bleu4", "exact", "cer", "sentences"):
        assert key in rows[0]
    assert rows[1]["exact"] == 1.0 and rows[0]["sentences"] == 4
    assert main(["text-eval", "--sentences", str(path), "--schemes", "deepsc", "--ew-n0", "30",
                 "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["text-eval", "--sentences", str(path), "--schemes", "nope",
                 "--ew-n0", "10"]) == 2
    assert "unknown text scheme" in capsys.readouterr().err
    empty = tmp_path / "e.txt"
    empty.write_text("\n\n")
    assert main(["text-eval", "--sentences", str(empty), "--ew-n0", "10"]) == 2


# ----------------------------------------------------------------------------- files, recipe


def test_text_jscc_file_round_trip_and_wrong_files(tmp_path, sentences):
    from genjscc import zoo
    from genjscc.core.text.model import TextJSCC, TextJSCCConfig, save_text_jscc
    from genjscc.core.text.tokenizer import train_tokenizer

    tok = train_tokenizer(sentences, 300)
    model = TextJSCC(TextJSCCConfig(vocab_size=tok.vocab_size, d_model=16, heads=2, layers=1,
                                    ff=32), tok)
    path = tmp_path / "tiny.safetensors"
    save_text_jscc(model, path)
    loaded = zoo.load(path, "text-jscc")
    assert loaded.config == model.config
    assert torch.equal(loaded.encode_text(sentences[0]), model.eval().encode_text(sentences[0]))
    with pytest.raises(ValueError, match="not a gr-genjscc text JSCC"):
        zoo.load(zoo.get_model("ecct-polar_n64_k32").path, "text-jscc")


def test_train_recipe_runs_and_checkpoints(tmp_path, sentences):
    from genjscc.cli import main

    data = tmp_path / "train.txt"
    data.write_text("\n".join(sentences) + "\n")
    out = tmp_path / "run"
    assert main(["train", "text-jscc", "--data", str(data), "--valid", str(data), "--steps",
                 "2", "--vocab", "300", "--d-model", "16", "--layers", "1", "--heads", "2",
                 "--ff", "32", "--batch", "4", "--valid-every", "2", "--out", str(out),
                 "--no-register"]) == 0
    assert (out / "checkpoint.pt").is_file() and (out / "log.jsonl").is_file()
    assert main(["train", "text-jscc", "--data", str(tmp_path / "none.txt"), "--out",
                 str(out), "--no-register"]) == 2


def test_float_lm_codes_each_sentence_alone_so_any_subset_decodes(tmp_path):
    """A float LM's probabilities depend on the batch they are computed in: the chain codes and
    decodes each sentence alone with one, so a sentence decodes the same whether the others
    were lost, received, or decoded earlier (lm-small, exact, batches freely)."""
    from genjscc.core.source.small import SmallByteLM, SmallLMConfig, save_small_lm

    torch.manual_seed(0)
    path = tmp_path / "float-lm.safetensors"
    save_small_lm(SmallByteLM(SmallLMConfig(embed=16, hidden=48, layers=1, cell="gru")), path)
    float_source = LMSentenceSource(str(path), rows=64)
    assert float_source.rows == 1 and LMSentenceSource("small", rows=64).rows == 64
    texts = ["the house rose at noon", "we vote on the report", "", "ein satz auf deutsch"]
    streams = float_source.encode(texts)
    fresh = LMSentenceSource(str(path))
    assert fresh.decode([streams[0], None, streams[2], streams[3]]) == \
        [texts[0], None, texts[2], texts[3]]
    assert fresh.decode([None, streams[1], None, None]) == [None, texts[1], None, None]


def test_sentence_streams_are_the_same_on_every_machine():
    """lm-small's sentence streams are integer-exact: these bits were made here (AMD EPYC,
    ATEN_CPU_CAPABILITY default and avx2, native, portable and torch kernels, 1 and 64 rows,
    1 and 2 threads all gave them), and any CPU must make and decode the same."""
    import hashlib

    texts = ["the committee adopted the report", "mr president ladies and gentlemen", "",
             "naïve ☃", "two\nlines"]
    source = LMSentenceSource("small", rows=3)
    streams = source.encode(texts)
    digest = hashlib.sha256(b"".join(s.tobytes() for s in streams)).hexdigest()
    assert digest[:16] == "d721c41311ed7a99"
    assert source.decode(streams) == texts
