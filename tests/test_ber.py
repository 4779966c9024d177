"""Monte-Carlo BER engine, decoder factory and the `genjscc ber` command.

Every simulation is seeded; sizes are small so the file runs in well under a minute.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genjscc.cli import main
from genjscc.commands.ber import parse_decoder_options, parse_ebno_list, resolve_code
from genjscc.core.fec.codes import get_code
from genjscc.core.fec.decoders import (
    DECODERS,
    HardDecisionDecoder,
    list_decoders,
    make_decoder,
    register_decoder,
)
from genjscc.core.sim import BerPoint, simulate_ber, uncoded_code
from genjscc.core.theory import ber_awgn, ber_bpsk_rayleigh
from genjscc.errors import GenjsccError

LDPC49 = "LDPC_N49_K24"


@pytest.fixture(scope="module")
def ldpc49():
    return get_code(LDPC49)


def genjscc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "genjscc.cli", *args], capture_output=True,
                          text=True, timeout=120)


# ------------------------------------------------------------------------ uncoded vs theory


@pytest.mark.parametrize(("modulation", "bps", "ebno"), [
    ("bpsk", 1, [2.0, 6.0]), ("qpsk", 2, [4.0]), ("16qam", 4, [6.0]),
])
def test_uncoded_awgn_matches_closed_form(modulation, bps, ebno) -> None:
    code = uncoded_code(64)
    points = simulate_ber(code, make_decoder("none", code), ebno, modulation=modulation,
                          min_errors=10**9, max_words=4000, seed=1, progress=False)
    assert [p.ebno_db for p in points] == ebno
    for p, theory in zip(points, ber_awgn(bps, ebno), strict=True):
        assert p.bit_errors > 500
        assert abs(p.ber / theory - 1) < 0.10, (modulation, p.ebno_db, p.ber, theory)
        # rate 1: Es/N0 = Eb/N0 + 10 log10(bits per symbol)
        assert p.esno_db == pytest.approx(p.ebno_db + 10 * math.log10(bps))


def test_uncoded_rayleigh_matches_closed_form() -> None:
    code = uncoded_code(64)
    ebno = [5.0, 10.0]
    # independent fading per symbol: many independent coefficients, a tight estimate
    points = simulate_ber(code, make_decoder("none", code), ebno, channel="rayleigh",
                          fading_block_length=1, min_errors=10**9, max_words=4000, seed=2,
                          progress=False)
    for p, theory in zip(points, ber_bpsk_rayleigh(ebno), strict=True):
        assert abs(p.ber / theory - 1) < 0.10, (p.ebno_db, p.ber, theory)


# ------------------------------------------------------------------------ coded links


def test_ldpc49_bp_matches_published_baseline(ldpc49) -> None:
    # ECCT's BP baseline (50 iterations): -ln(BER) = 6.23 at 4 dB, BER over all n bits.
    # This engine measures 6.06 +- 0.03 there (200 k words); 400 block errors keep the seeded
    # estimate within about +-0.1 of that.
    (p,) = simulate_ber(ldpc49, make_decoder("bp", ldpc49, num_iters=50), [4.0],
                        min_errors=400, max_words=100_000, batch_size=4096, seed=0,
                        progress=False)
    assert p.block_errors >= 400
    assert abs(-math.log(p.ber_codeword) - 6.23) < 0.3, p
    assert abs(p.neg_ln_ber - 6.23) < 0.3, p
    # far better than uncoded BPSK at the same Eb/N0
    assert p.ber < ber_awgn(1, 4.0) / 4


def test_random_words_are_sent(ldpc49) -> None:
    """A decoder that always answers the all-zero word must be wrong on half the bits."""
    zeros = lambda llr: torch.zeros(llr.shape, dtype=torch.uint8)  # noqa: E731
    (p,) = simulate_ber(ldpc49, zeros, [20.0], min_errors=10**9, max_words=500, seed=3,
                        progress=False)
    assert abs(p.ber - 0.5) < 0.03
    assert p.bler == 1.0


def test_ldpc_cpp_agrees_with_bp(ldpc49) -> None:
    kwargs = dict(min_errors=10**9, max_words=1000, seed=4, progress=False)
    (p_bp,) = simulate_ber(ldpc49, make_decoder("bp", ldpc49), [3.0], **kwargs)
    (p_cpp,) = simulate_ber(ldpc49, make_decoder("ldpc-cpp", ldpc49), [3.0], **kwargs)
    # same words and noise; both are flooding sum-product with 50 iterations
    assert p_bp.block_errors > 20
    assert abs(p_cpp.bit_errors / p_bp.bit_errors - 1) < 0.1
    assert abs(p_cpp.block_errors - p_bp.block_errors) <= 0.1 * p_bp.block_errors


@pytest.mark.parametrize(("modulation", "qm", "ebno"), [("qpsk", 2, 4.0), ("16qam", 4, 7.0)])
def test_5g_nr_end_to_end(modulation, qm, ebno) -> None:
    code = resolve_code("5gnr:bg2:k=256:e=512", qm)
    assert code.modulation_order == qm and code.e == 512
    decoder = make_decoder("bp", code, num_iters=20)
    low, high = simulate_ber(code, decoder, [0.0, ebno], modulation=modulation,
                             max_words=32, batch_size=16, seed=5, progress=False)
    assert low.words == high.words == 32
    assert low.bler > 0.5  # far below threshold
    assert high.block_errors == 0 and high.bit_errors == 0
    assert high.code_rate == pytest.approx(0.5)


def test_rayleigh_coded_runs(ldpc49) -> None:
    points = simulate_ber(ldpc49, make_decoder("minsum", ldpc49, num_iters=10), [4.0, 12.0],
                          modulation="qpsk", channel="rayleigh", fading_block_length=5,
                          min_errors=10**9, max_words=400, seed=6, progress=False)
    assert [p.words for p in points] == [400, 400]
    assert points[1].ber < points[0].ber < 0.5
    # 49 bits on QPSK: one random pad bit per word, charged to the energy
    assert points[0].code_rate == pytest.approx(24 / 50)


def test_5g_modulation_order_mismatch_is_refused() -> None:
    code = get_code("5gnr:bg2:k=256:e=512:qm=2")
    with pytest.raises(ValueError, match="qm=4"):
        simulate_ber(code, make_decoder("none", code), [3.0], modulation="16qam",
                     progress=False)


# ------------------------------------------------------------------------ engine mechanics


def test_reproducible_and_seed_dependent(ldpc49) -> None:
    decoder = make_decoder("minsum", ldpc49, num_iters=5)
    run = lambda seed: simulate_ber(ldpc49, decoder, [2.0, 3.0], min_errors=10**9,  # noqa: E731
                                    max_words=300, seed=seed, progress=False)
    a, b, c = run(7), run(7), run(8)
    strip = lambda pts: [(p.bit_errors, p.block_errors, p.codeword_bit_errors) for p in pts]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_stop_rules(ldpc49) -> None:
    decoder = make_decoder("none", ldpc49)
    (p,) = simulate_ber(ldpc49, decoder, [0.0], min_errors=50, max_words=10_000,
                        batch_size=20, seed=0, progress=False)
    assert 50 <= p.block_errors < 50 + 20 and p.words % 20 == 0  # stops after the batch
    (p,) = simulate_ber(ldpc49, decoder, [0.0], min_errors=10**9, max_words=70,
                        batch_size=32, seed=0, progress=False)
    assert p.words == 70  # last batch trimmed to max_words
    # no error at 30 dB: the sweep ends there when the later points are higher
    code = uncoded_code(16)
    dec = make_decoder("none", code)
    pts = simulate_ber(code, dec, [30.0, 31.0, 32.0], max_words=100, progress=False)
    assert len(pts) == 1 and pts[0].bit_errors == 0 and pts[0].neg_ln_ber == math.inf
    assert pts[0].to_dict()["neg_ln_ber"] is None
    pts = simulate_ber(code, dec, [30.0, 0.0], max_words=100, progress=False)
    assert len(pts) == 2 and pts[1].bit_errors > 0


def test_progress_bar_on_stderr(ldpc49, capsys) -> None:
    simulate_ber(ldpc49, make_decoder("none", ldpc49), [3.0], max_words=64, progress=True)
    err = capsys.readouterr().err
    assert "Eb/N0  3.00 dB" in err and "64/64" in err


@pytest.mark.parametrize(("kwargs", "error"), [
    (dict(channel="rician"), "unknown channel"),
    (dict(modulation="8psk"), "unknown modulation"),
    (dict(min_errors=0), "min_errors"),
    (dict(max_words=-1), "max_words"),
    (dict(batch_size=0), "batch_size"),
    (dict(ebno_db=[]), "non-empty"),
    (dict(ebno_db=[float("nan")]), "finite"),
    (dict(ebno_db=["x"]), "numbers"),
    (dict(fading_block_length=4), "rayleigh"),
])
def test_simulate_ber_rejects_bad_input(ldpc49, kwargs, error) -> None:
    args = {"ebno_db": [3.0], "progress": False, **kwargs}
    with pytest.raises(ValueError, match=error):
        simulate_ber(ldpc49, make_decoder("none", ldpc49), **args)


def test_decoder_with_wrong_output_shape_is_caught(ldpc49) -> None:
    with pytest.raises(ValueError, match="decoder must return"):
        simulate_ber(ldpc49, lambda llr: llr[..., :10] < 0, [3.0], progress=False)
    with pytest.raises(TypeError, match="callable"):
        simulate_ber(ldpc49, "bp", [3.0], progress=False)


def test_berpoint_fields() -> None:
    names = set(BerPoint.__dataclass_fields__)
    assert {"ebno_db", "esno_db", "ber", "bler", "neg_ln_ber", "words", "bit_errors",
            "block_errors", "ber_codeword"} <= names


# ------------------------------------------------------------------------ decoder factory


def test_every_decoder_decodes_a_clean_codeword(ldpc49) -> None:
    gen = torch.Generator().manual_seed(9)
    info = torch.randint(0, 2, (3, ldpc49.k), generator=gen, dtype=torch.uint8)
    cw = ldpc49.encode(info)
    # Distinct magnitudes: with exactly equal ones min-sum meets exact ties and zero messages,
    # whose sign (taken as +) favours bit 0, and layered min-sum then fails on some words.
    magnitude = 3.0 + 2.0 * torch.rand(cw.shape, generator=gen)
    llr = magnitude * (1.0 - 2.0 * cw.float())
    llr[:, :2] = -llr[:, :2]  # two channel errors that every BP decoder corrects
    for name in list_decoders():
        if name == "ecct":
            continue  # needs a model trained for the code: tests/test_ecct.py
        bits = make_decoder(name, ldpc49, num_iters=20)(llr)
        assert bits.dtype == torch.uint8 and bits.shape == cw.shape, name
        if name == "none":
            assert int((bits != cw).sum()) == 6
        else:
            assert torch.equal(bits, cw), name


def test_layered_variants_and_options(ldpc49) -> None:
    assert make_decoder("bp-layered", ldpc49).schedule == "layered"
    assert make_decoder("BP_Layered", ldpc49).schedule == "layered"
    assert make_decoder("bp", ldpc49, schedule="layered").schedule == "layered"
    dec = make_decoder("normalized-minsum", ldpc49, num_iters=7, scaling=0.8)
    assert (dec.check_rule, dec.num_iters, dec.scaling) == ("normalized-minsum", 7, 0.8)
    assert make_decoder("offset-minsum-layered", ldpc49, offset=0.3).offset == 0.3
    assert isinstance(make_decoder("none", ldpc49), HardDecisionDecoder)


def test_ldpc_cpp_sanitises_and_checks_input(ldpc49) -> None:
    dec = make_decoder("ldpc-cpp", ldpc49)
    llr = torch.full((2, ldpc49.n), 5.0)
    llr[0, 0], llr[0, 1], llr[1, 2] = float("nan"), float("inf"), -1e30
    assert dec(llr).sum() == 0  # NaN = erasure, huge values clipped, still the zero word
    with pytest.raises(ValueError, match="n = 49"):
        dec(torch.zeros(2, 48))
    with pytest.raises(ValueError, match="bp_method"):
        make_decoder("ldpc-cpp", ldpc49, bp_method="magic")


def test_factory_errors(ldpc49) -> None:
    with pytest.raises(ValueError, match="unknown decoder 'turbo'"):
        make_decoder("turbo", ldpc49)
    with pytest.raises(ValueError, match="unexpected keyword"):
        make_decoder("bp", ldpc49, colour="red")
    with pytest.raises(ValueError, match="no options"):
        make_decoder("none", ldpc49, scaling=0.5)
    with pytest.raises(TypeError):
        make_decoder(3, ldpc49)


def test_register_decoder_hook(ldpc49) -> None:
    def build(code, num_iters=50, **options):
        return HardDecisionDecoder(code.n)

    try:
        register_decoder("test-hard", build)
        assert "test-hard" in list_decoders()
        assert isinstance(make_decoder("test-hard", ldpc49), HardDecisionDecoder)
        with pytest.raises(ValueError, match="already registered"):
            register_decoder("test-hard", build)
        # lazy "module:attribute" entries are imported on first use
        register_decoder("test-lazy", "genjscc.core.fec.decoders:_build_none")
        assert isinstance(DECODERS["test-lazy"], str)
        assert isinstance(make_decoder("test-lazy", ldpc49), HardDecisionDecoder)
        assert callable(DECODERS["test-lazy"])
        with pytest.raises(ValueError, match="lower-case"):
            register_decoder("Bad Name", build)
    finally:
        DECODERS.pop("test-hard", None)
        DECODERS.pop("test-lazy", None)


# ------------------------------------------------------------------------ CLI


def test_parse_ebno_list() -> None:
    assert parse_ebno_list("4,5,6") == [4.0, 5.0, 6.0]
    assert parse_ebno_list("0:2:0.5") == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert parse_ebno_list("-1:1:1, 3.5") == [-1.0, 0.0, 1.0, 3.5]
    assert parse_ebno_list("0:1:0.3") == [0.0, 0.3, 0.6, 0.9]
    assert parse_ebno_list("3:1:-1") == [3.0, 2.0, 1.0]
    for bad in ("", "4,,5", "a", "1:2", "1:2:0", "2:1:1", "1:2:3:4", "inf"):
        with pytest.raises(GenjsccError):
            parse_ebno_list(bad)


def test_parse_decoder_options_and_codes() -> None:
    assert parse_decoder_options(["scaling=0.8", "early-stop=false", "layers=x"]) == {
        "scaling": 0.8, "early_stop": False, "layers": "x"}
    with pytest.raises(GenjsccError):
        parse_decoder_options(["scaling"])
    assert resolve_code("uncoded:32", 1).n == 32
    assert resolve_code("5gnr:k=256:e=512", 4).modulation_order == 4
    assert resolve_code("5gnr:k=256:e=512:qm=2", 4).modulation_order == 2
    assert resolve_code(LDPC49, 2).name == LDPC49


def test_cli_json_schema() -> None:
    result = genjscc("ber", "--code", LDPC49, "--decoder", "bp", "--ebno", "2:3:1",
                     "--min-errors", "20", "--max-words", "2000", "--batch", "500", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row["ebno_db"] for row in rows] == [2.0, 3.0]
    for row in rows:
        for key, kind in (("ebno_db", float), ("ber", float), ("bler", float),
                          ("neg_ln_ber", float), ("words", int), ("bit_errors", int),
                          ("block_errors", int), ("ber_codeword", float), ("esno_db", float)):
            assert isinstance(row[key], kind), key
        assert row["block_errors"] >= 20 and row["words"] % 500 == 0
        assert row["neg_ln_ber"] == pytest.approx(-math.log(row["ber"]))
        assert (row["code"], row["decoder"], row["n"], row["k"]) == (LDPC49, "bp", 49, 24)


def test_cli_table_and_plot(tmp_path) -> None:
    png = tmp_path / "curve.png"
    result = genjscc("ber", "--code", "5gnr:bg2:k=256:e=512", "--decoder", "minsum",
                     "--iters", "10", "--modulation", "qpsk", "--ebno", "0,1", "--max-words",
                     "32", "--plot", str(png))
    assert result.returncode == 0, result.stderr
    assert "5gnr:bg2:k=256:e=512:qm=2" in result.stdout
    assert len(result.stdout.strip().splitlines()) == 4  # title, header, 2 points
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Warning" not in result.stderr


CLI_USER_ERRORS = [
    ["--code", "NO_SUCH_CODE", "--ebno", "4"],
    ["--code", LDPC49, "--ebno", "4,x"],
    ["--code", LDPC49, "--ebno", "4:1:1"],
    ["--code", LDPC49, "--decoder", "turbo", "--ebno", "4"],
    ["--code", LDPC49, "--modulation", "8psk", "--ebno", "4"],
    ["--code", LDPC49, "-O", "colour=red", "--ebno", "4"],
    ["--code", "5gnr:k=256:e=512:qm=2", "--modulation", "16qam", "--ebno", "4"],
    ["--code", "uncoded:8", "--decoder", "bp", "--ebno", "4"],
    ["--code", LDPC49, "--ebno", "4", "--min-errors", "0"],
    ["--code", str(Path("no") / "such.alist"), "--ebno", "4"],
]


def test_cli_user_error_exits_2_without_traceback() -> None:
    result = genjscc("ber", "--code", "NO_SUCH_CODE", "--ebno", "4")
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("genjscc ber: unknown code 'NO_SUCH_CODE'")


@pytest.mark.parametrize("args", CLI_USER_ERRORS)
def test_cli_user_errors_exit_2(args, capsys) -> None:
    # in-process (a subprocess per case costs seconds of imports); main() turns user errors
    # into one line and status 2, anything else would raise here with its traceback
    assert main(["ber", "--no-progress", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("genjscc ber: ") and captured.err.count("\n") == 1


def test_cli_help_teaches() -> None:
    result = genjscc("ber", "--help")
    assert result.returncode == 0
    for text in ("examples:", "--code LDPC_N49_K24", "5gnr:bg2:k=512:e=1024", ".alist",
                 "0:6:0.5", "POLAR_N64_K32", "ldpc-cpp", "--json", "--plot"):
        assert text in result.stdout, text
    assert "ber" in genjscc("--help").stdout


def test_cli_reads_a_code_file(tmp_path, ldpc49) -> None:
    path = tmp_path / "hamming.txt"
    np.savetxt(path, np.array([[1, 1, 0, 1, 1, 0, 0], [1, 0, 1, 1, 0, 1, 0],
                               [0, 1, 1, 1, 0, 0, 1]]), fmt="%d")
    result = genjscc("ber", "--code", str(path), "--decoder", "bp", "--ebno", "6",
                     "--max-words", "200", "--json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["code"], row["n"], row["k"], row["words"]) == ("hamming", 7, 4, 200)
