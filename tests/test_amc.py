"""Link adaptation: TS 38.214 MCS tables, TBS, shipped SNR thresholds, MCS choice, the Monte
Carlo behind the thresholds, the cliff curves, the mcs_selector block and `genjscc amc`."""

from __future__ import annotations

import math
import time

import numpy as np
import pmt
import pytest

from genjscc.cli import main
from genjscc.core.amc import (
    CurvePoint,
    amc_cliff_curves,
    interpolate_snr,
    load_thresholds,
    mcs_entry,
    mcs_table,
    measure_thresholds,
    plot_amc_cliff,
    select_mcs,
    simulate_bler,
    snr_thresholds,
    transport_block_size,
    transport_config,
    write_curves,
    write_thresholds,
)
from genjscc.core.fec.decoders import make_decoder

# ----------------------------------------------------------------------------- tables


@pytest.mark.parametrize(
    ("table", "index", "qm", "r1024", "se"),
    [
        (1, 0, 2, 120, 0.2344),
        (1, 9, 2, 679, 1.3262),
        (1, 10, 4, 340, 1.3281),
        (1, 17, 6, 438, 2.5664),
        (1, 28, 6, 948, 5.5547),
        (2, 0, 2, 120, 0.2344),
        (2, 5, 4, 378, 1.4766),
        (2, 20, 8, 682.5, 5.3320),
        (2, 26, 8, 916.5, 7.1602),
        (2, 27, 8, 948, 7.4063),
    ],
)
def test_mcs_table_matches_ts38214(table, index, qm, r1024, se):
    e = mcs_entry(index, table)
    assert (e.index, e.modulation_order, e.table) == (index, qm, table)
    assert e.code_rate_x1024 == pytest.approx(r1024)
    assert e.spectral_efficiency == pytest.approx(se, abs=1e-4)
    assert e.modulation == {2: "qpsk", 4: "16qam", 6: "64qam", 8: "256qam"}[qm]


def test_mcs_tables_exclude_reserved_rows_and_are_consistent():
    assert [e.index for e in mcs_table(1)] == list(range(29))
    assert [e.index for e in mcs_table(2)] == list(range(28))
    for table in (1, 2):
        for e in mcs_table(table):
            assert e.spectral_efficiency == pytest.approx(e.modulation_order * e.code_rate,
                                                          abs=5e-5)
            assert 0 < e.code_rate < 1


@pytest.mark.parametrize("bad", [0, 3, "1", True, 1.5])
def test_bad_table_is_refused(bad):
    with pytest.raises(ValueError, match="table"):
        mcs_table(bad)


@pytest.mark.parametrize(("index", "table"), [(29, 1), (28, 2), (-1, 1), (1.0, 1), (True, 1)])
def test_reserved_or_bad_index_is_refused(index, table):
    with pytest.raises(ValueError, match="MCS index"):
        mcs_entry(index, table)


def test_tbs_matches_py3gpp():
    nr_tbs = pytest.importorskip("py3gpp.nrTBS").nrTBS
    names = {2: "QPSK", 4: "16QAM", 6: "64QAM", 8: "256QAM"}
    count = 0
    for table in (1, 2):
        for e in mcs_table(table)[::3]:
            for n_prb in (1, 4, 11, 40, 150):  # covers N_info <= 3824 and above, C > 1
                ref = nr_tbs(names[e.modulation_order], 1, n_prb, 132, e.code_rate)
                assert transport_block_size(132 * n_prb, e.modulation_order, e.code_rate) == ref
                count += 1
    assert count > 50


def test_tbs_known_values_and_bad_input():
    assert transport_block_size(512, 2, 120 / 1024) == 120  # N_info = 120, in the table
    assert transport_block_size(256, 2, 120 / 1024) == 56  # N_info = 60 -> 56
    assert transport_block_size(12, 2, 120 / 1024) == 24  # the smallest TBS
    with pytest.raises(ValueError, match="num_re"):
        transport_block_size(0, 2, 0.5)
    with pytest.raises(ValueError, match="code_rate"):
        transport_block_size(100, 2, 1.5)


def test_transport_config_is_one_code_block_with_tb_crc():
    for table, index in ((1, 0), (1, 16), (1, 28), (2, 27)):
        e = mcs_entry(index, table)
        cfg = transport_config(e, 512)
        assert cfg.crc_length == (16 if cfg.tbs <= 3824 else 24)
        assert cfg.k == cfg.tbs + cfg.crc_length == cfg.code.k
        assert cfg.e == 512 * e.modulation_order == cfg.code.e
        assert cfg.code.modulation_order == e.modulation_order
        assert cfg.code.base_graph == cfg.base_graph
        assert abs(cfg.effective_code_rate - e.code_rate) < 0.05
    assert transport_config(mcs_entry(28, 1), 512).base_graph == 1
    assert transport_config(mcs_entry(0, 1), 512).base_graph == 2


def test_transport_config_bad_input():
    with pytest.raises(ValueError, match="more than one"):
        transport_config(mcs_entry(27, 2), 2000)  # TBS > 8448: several code blocks
    with pytest.raises(ValueError, match="too small"):
        transport_config(mcs_entry(0, 1), 8)  # 16 coded bits for a 24 + 16 bit block
    with pytest.raises(TypeError, match="MCSEntry"):
        transport_config(5, 512)


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("table", [1, 2])
def test_shipped_thresholds_are_complete_and_documented(table):
    shipped = load_thresholds(table)
    assert sorted(shipped.snr_db) == [e.index for e in mcs_table(table)]
    assert all(math.isfinite(v) for v in shipped.snr_db.values())
    assert shipped.target_bler == 0.1
    assert shipped.metadata["command"].startswith(f"genjscc amc measure --table {table} ")
    for key in ("num_re", "decoder", "num_iters", "machine", "date"):
        assert shipped.metadata[key]
    assert set(shipped.curves) == set(shipped.snr_db)


@pytest.mark.parametrize("table", [1, 2])
def test_shipped_thresholds_increase_with_spectral_efficiency(table):
    """An MCS with a higher spectral efficiency needs a higher SNR. The real exceptions are
    the overlapping rows of table 1 at a modulation change, whose efficiencies differ by less
    than 0.01 bit/s/Hz: MCS 10 (16QAM R 0.33) needs 0.75 dB more than MCS 9 (QPSK R 0.66),
    and MCS 17 (64QAM R 0.43) 1.3 dB more than MCS 16 (16QAM R 0.64), docs/amc.md."""
    thr = snr_thresholds(table)
    exceptions = []
    for a in mcs_table(table):
        for b in mcs_table(table):
            gap = b.spectral_efficiency - a.spectral_efficiency
            if gap >= 0.01:
                assert thr[b.index] > thr[a.index], (a.index, b.index)
            elif gap > 0 and thr[b.index] < thr[a.index]:
                assert thr[a.index] - thr[b.index] < 2.0
                exceptions.append((a.index, b.index))
    assert exceptions == ([(17, 16)] if table == 1 else [])


def test_thresholds_are_not_far_from_capacity():
    """Between the Shannon limit and 6 dB above it: catches a gross unit error (Eb/N0 for
    Es/N0 shifts the high MCS by 7 dB and more)."""
    for table in (1, 2):
        thr = snr_thresholds(table)
        for e in mcs_table(table):
            shannon = 10 * math.log10(2**e.spectral_efficiency - 1)
            assert shannon < thr[e.index] < shannon + 6, (table, e.index)


def test_interpolate_snr():
    pts = [CurvePoint(0.0, 1.0, 100, 100), CurvePoint(1.0, 0.5, 200, 100),
           CurvePoint(2.0, 0.05, 2000, 100)]
    expected = 1.0 + math.log(0.5 / 0.1) / math.log(0.5 / 0.05)
    assert interpolate_snr(pts, 0.1) == pytest.approx(expected)
    assert math.isnan(interpolate_snr(pts[:2], 0.1))  # never below the target
    assert math.isnan(interpolate_snr([CurvePoint(3.0, 0.01, 100, 1)], 0.1))  # never above
    # a zero-error point counts as half an error
    zero = [CurvePoint(0.0, 0.4, 100, 40), CurvePoint(1.0, 0.0, 1000, 0)]
    t = math.log(0.4 / 0.1) / math.log(0.4 / 0.0005)
    assert interpolate_snr(zero, 0.1) == pytest.approx(t)


def test_select_mcs_is_monotone_and_respects_margin():
    for table in (1, 2):
        thr = snr_thresholds(table)
        snrs = np.arange(-12.0, 30.0, 0.1)
        chosen = [select_mcs(float(s), table) for s in snrs]
        assert [e.index for e in chosen] == sorted(e.index for e in chosen)
        se = [e.spectral_efficiency for e in chosen]
        assert se == sorted(se)
        assert chosen[0].index == 0 and chosen[-1].index == len(mcs_table(table)) - 1
        for s in (-3.3, 4.2, 12.3, 17.0):
            for margin in (0.0, 1.0, 2.5, -1.0):
                e = select_mcs(s, table, margin_db=margin)
                assert e == select_mcs(s - margin, table)
                eligible = [m for m in mcs_table(table) if thr[m.index] <= s - margin]
                if eligible:
                    assert thr[e.index] <= s - margin
                    assert e.spectral_efficiency == max(m.spectral_efficiency for m in eligible)
                else:
                    assert e.index == 0
        assert select_mcs(12.3, table, margin_db=3).index <= select_mcs(12.3, table).index
    assert select_mcs(min(snr_thresholds(1).values()) - 1.0, 1).index == 0  # below all


def test_select_mcs_skips_the_less_efficient_overlap_row():
    """Table 1 MCS 17 (SE 2.5664) needs more SNR than MCS 16 (SE 2.5703): never chosen."""
    thr = snr_thresholds(1)
    assert thr[17] > thr[16]
    assert select_mcs(thr[17] + 0.01, 1).index == 16
    assert 17 not in {select_mcs(float(s), 1).index for s in np.arange(8.0, 11.0, 0.02)}
    assert select_mcs(thr[18] + 0.01, 1).index == 18


def test_select_mcs_other_target_and_bad_input():
    # a looser target allows the same or a higher MCS at every SNR
    for s in (0.0, 8.0, 15.0):
        assert select_mcs(s, 1, target_bler=0.3).index >= select_mcs(s, 1).index
    with pytest.raises(ValueError, match="bracket"):
        snr_thresholds(1, target_bler=1e-6)
    for bad, exc in (("12", TypeError), (math.nan, ValueError), (math.inf, ValueError),
                     (None, TypeError), (True, TypeError)):
        with pytest.raises(exc):
            select_mcs(bad)
    with pytest.raises(ValueError, match="target_bler"):
        select_mcs(10.0, target_bler=0.0)
    with pytest.raises(ValueError, match="table"):
        select_mcs(10.0, table=3)
    with pytest.raises(ValueError, match="margin_db"):
        select_mcs(10.0, margin_db=math.nan)
    custom = {0: -5.0, 1: 0.0, 2: math.nan}
    assert select_mcs(1.0, thresholds=custom).index == 1


@pytest.mark.parametrize(("table", "index"), [(1, 4), (2, 21)])
def test_monte_carlo_bler_brackets_the_shipped_threshold(table, index):
    """At threshold + 1 dB the BLER is below 10 %, at threshold - 1 dB above (small runs)."""
    thr = snr_thresholds(table)[index]
    shipped = load_thresholds(table)
    cfg = transport_config(mcs_entry(index, table), shipped.num_re)
    dec = make_decoder(shipped.decoder, cfg.code, num_iters=shipped.num_iters)
    above = simulate_bler(cfg, dec, thr + 1.0, min_errors=20, max_words=300, seed=11)
    below = simulate_bler(cfg, dec, thr - 1.0, min_errors=20, max_words=300, seed=12)
    assert above.bler < 0.1 and below.bler > 0.1, (above, below)


def test_measure_thresholds_small_run_and_csv_roundtrip(tmp_path):
    m = measure_thresholds(table=1, num_re=512, mcs=[0, 2], min_errors=20, max_words=300,
                           snr_step_db=0.5, seed=3, progress=False)
    assert [r.entry.index for r in m.results] == [0, 2]
    shipped = snr_thresholds(1)
    for r in m.results:
        assert abs(r.snr_db - shipped[r.entry.index]) < 0.5  # low-precision run
        assert len(r.points) >= 2
        assert any(p.bler > 0.1 for p in r.points) and any(p.bler <= 0.1 for p in r.points)
    assert m.command().startswith("genjscc amc measure --table 1 --num-re 512")
    out, curves = tmp_path / "thr.csv", tmp_path / "curves.csv"
    write_thresholds(m, out, {"command": "test"})
    write_curves(m, curves)
    loaded = load_thresholds(out, curves=curves)
    assert loaded.snr_db == pytest.approx({r.entry.index: round(r.snr_db, 3) for r in m.results})
    assert loaded.num_re == 512 and loaded.metadata["command"] == "test"
    assert len(loaded.curves[0]) == len(m.results[0].points)
    assert select_mcs(-3.0, thresholds=loaded.snr_db).index in (0, 2)


def test_measure_thresholds_bad_input():
    with pytest.raises(ValueError, match="target_bler"):
        measure_thresholds(target_bler=1.0)
    with pytest.raises(ValueError, match="snr_step_db"):
        measure_thresholds(snr_step_db=0.0)
    with pytest.raises(ValueError, match="MCS index"):
        measure_thresholds(mcs=[40])
    with pytest.raises(ValueError, match="more than one"):
        measure_thresholds(table=2, num_re=4000, mcs=[27])


# ----------------------------------------------------------------------------- cliff


def test_cliff_and_leveling(tmp_path):
    thr = snr_thresholds(1)
    estimate = 2.0
    fixed = select_mcs(estimate, 1)
    true = [estimate - 2.5, estimate, estimate + 3.0]
    start = time.perf_counter()
    data = amc_cliff_curves(estimate, true, table=1, num_words=60, min_errors=20, seed=1)
    assert time.perf_counter() - start < 30
    assert data.fixed_mcs == fixed and data.fixed_threshold_db == thr[fixed.index]
    assert data.true_snr_db == tuple(true)
    assert list(data.genie_mcs) == sorted(data.genie_mcs)
    assert data.genie_mcs[1] == fixed.index
    # cliff: 2.5 dB below the estimate the fixed MCS fails almost always
    assert data.fixed_bler[0] > 0.8
    assert data.fixed_goodput[0] < 0.2 * fixed.spectral_efficiency
    assert data.genie_goodput[0] > data.fixed_goodput[0]
    # leveling: 3 dB above, the fixed MCS is error-free but its goodput stays at its SE
    assert data.fixed_bler[2] < 0.05
    assert data.fixed_goodput[2] == pytest.approx(fixed.spectral_efficiency, rel=0.05)
    assert data.genie_goodput[2] > 1.3 * data.fixed_goodput[2]
    assert all(g <= c for g, c in zip(data.genie_goodput, data.capacity, strict=True))
    d = data.to_dict()
    assert d["fixed_mcs"]["mcs_index"] == fixed.index and len(d["fixed_bler"]) == 3
    png = plot_amc_cliff(data, tmp_path / "cliff.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cliff_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        amc_cliff_curves(5.0, [])
    with pytest.raises(ValueError, match="finite"):
        amc_cliff_curves(5.0, [1.0, math.nan])
    with pytest.raises(ValueError, match="num_words"):
        amc_cliff_curves(5.0, [5.0], num_words=0)
    with pytest.raises(TypeError, match="AmcCliffData"):
        plot_amc_cliff({"a": 1}, tmp_path / "x.png")


# ----------------------------------------------------------------------------- block

TIMEOUT_S = 10.0


def _dict(**fields) -> pmt.pmt_base:
    d = pmt.make_dict()
    for key, value in fields.items():
        d = pmt.dict_add(d, pmt.intern(key), value)
    return d


@pytest.mark.flowgraph
def test_mcs_selector_block_in_a_flowgraph():
    from gnuradio import blocks, genjscc, gr

    sel = genjscc.mcs_selector(table=2, target_bler=0.1, margin_db=1.0)
    good = [
        pmt.from_double(12.3),
        pmt.from_long(-20),
        _dict(snr_db=pmt.from_double(25.0)),
        pmt.cons(_dict(snr_db=pmt.from_float(7.5)), pmt.init_u8vector(2, [1, 2])),
    ]
    bad = [
        pmt.intern("twelve"),
        pmt.from_complex(3 + 1j),
        pmt.from_double(math.nan),
        _dict(snr=pmt.from_double(3.0)),
        _dict(snr_db=pmt.intern("x")),
        pmt.cons(pmt.PMT_NIL, pmt.init_f32vector(1, [3.0])),
        pmt.init_f32vector(1, [3.0]),
    ]
    tb = gr.top_block()
    sink = blocks.message_debug()
    tb.msg_connect(sel, "mcs", sink, "store")
    tb.start()
    try:
        for msg in bad[:3] + good[:2] + bad[3:] + good[2:]:
            sel.to_basic_block()._post(pmt.intern("snr"), msg)
        deadline = time.monotonic() + TIMEOUT_S
        while sel.num_processed() + sel.num_errors() < len(good) + len(bad) and \
                time.monotonic() < deadline:
            time.sleep(0.005)
        while sink.num_messages() < len(good) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
    assert sel.num_errors() == len(bad) and sel.num_processed() == len(good)
    assert sink.num_messages() == len(good)
    thr = snr_thresholds(2)
    for i, snr in enumerate((12.3, -20.0, 25.0, 7.5)):
        msg = sink.get_message(i)
        assert pmt.is_dict(msg)
        out = {k: pmt.to_python(pmt.dict_ref(msg, pmt.intern(k), pmt.PMT_NIL))
               for k in ("mcs_index", "modulation_order", "code_rate", "modulation",
                         "spectral_efficiency", "table", "snr_db", "threshold_db")}
        e = select_mcs(snr, 2, margin_db=1.0)
        assert out["mcs_index"] == e.index and out["modulation_order"] == e.modulation_order
        assert out["code_rate"] == pytest.approx(e.code_rate)
        assert out["modulation"] == e.modulation and out["table"] == 2
        assert out["spectral_efficiency"] == pytest.approx(e.spectral_efficiency)
        assert out["snr_db"] == pytest.approx(snr, abs=1e-6)
        assert out["threshold_db"] == pytest.approx(thr[e.index])


def test_mcs_selector_settings():
    from gnuradio import genjscc

    sel = genjscc.mcs_selector()
    sel.set_margin_db(2.0)
    sel.set_target_bler(0.2)
    assert (sel.table(), sel.target_bler(), sel.margin_db()) == (1, 0.2, 2.0)
    with pytest.raises(ValueError, match="table"):
        genjscc.mcs_selector(table=3)
    with pytest.raises(ValueError, match="target_bler"):
        genjscc.mcs_selector(target_bler=1.5)
    with pytest.raises(ValueError, match="margin_db"):
        sel.set_margin_db(math.inf)
    assert sel.margin_db() == 2.0  # a refused setting leaves the old one


# ----------------------------------------------------------------------------- CLI


def test_cli_select_and_table(capsys):
    assert main(["amc", "select", "--snr", "12.3", "--margin", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"MCS {select_mcs(12.3, margin_db=1).index} (table 1)")
    assert main(["amc", "select", "--snr=-30", "--table", "2", "--json"]) == 0
    import json

    choice = json.loads(capsys.readouterr().out)
    assert choice["mcs_index"] == 0 and choice["table"] == 2
    assert main(["amc", "table", "--table", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "genjscc amc measure --table 2" in lines[1]
    assert len([ln for ln in lines if ln.strip()[:2].strip().isdigit()]) == 28
    assert main(["amc", "table", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["mcs_index"] for r in rows] == list(range(29))


@pytest.mark.parametrize(
    "argv",
    [
        ["amc", "select", "--snr", "nan"],
        ["amc", "select", "--snr", "10", "--table", "3"],
        ["amc", "table", "--table", "5"],
        ["amc", "select", "--snr", "10", "--target-bler", "2"],
        ["amc", "measure", "--mcs", "1,x"],
        ["amc", "cliff", "--estimate", "5", "--true", "1:x"],
        ["amc"],
    ],
)
def test_cli_errors_exit_2_without_traceback(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("genjscc amc:")


def test_cli_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["amc", "select"])  # --snr missing
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
