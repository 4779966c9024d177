"""benchmarks/run_all.py: a quick run of the LDPC benchmark into a temporary file, the merge of
sections, and its refusal of bad input. The quick run is a smoke test (seconds), not a
measurement; `make bench` produces docs/benchmarks.md."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUN_ALL = REPO / "benchmarks" / "run_all.py"


def _load_run_all():
    spec = importlib.util.spec_from_file_location("run_all", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_ALL), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_quick_ldpc_section_into_temp_output(tmp_path):
    out = tmp_path / "bench.md"
    # An existing section of another benchmark must survive the rewrite untouched.
    kept = "<!-- bench:other -->\n## Other\nkeep me\n<!-- /bench:other -->\n"
    out.write_text("# Benchmarks\n\n" + kept)
    proc = _run("--quick", "--only", "ldpc", "--output", str(out))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = out.read_text()
    section = re.search(r"<!-- bench:ldpc -->\n(.*?)<!-- /bench:ldpc -->", text, re.DOTALL)
    assert section, text
    body = section.group(1)
    assert "benchmarks/bench_ldpc.py --quick`" in body
    assert "| machine |" in body and "| load average |" in body
    # the results table: header, separator and one row per decoder
    rows = [line for line in body.splitlines() if line.startswith("| 4 |")]
    decoders = {row.split("|")[2].strip() for row in rows}
    # ours with both backends (the native kernel at 1 and 2 threads, torch)
    ours = {(d.split(" [")[0], d.partition("[")[2].rstrip("]")) for d in decoders if "[" in d}
    for name in ("bp", "bp-layered", "normalized-minsum"):
        for variant in ("native, 1 thread", "native, 2 threads", "torch, 1 thread"):
            assert (name, variant) in ours, (name, variant, decoders)
    assert any(d.startswith("ldpc-cpp") for d in decoders)
    assert any(d.startswith("gr-fec") for d in decoders)
    for row in rows:  # words and BLER are numbers, BLER in [0, 1]
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert int(cells[2].replace(",", "")) > 0 and 0.0 <= float(cells[4]) <= 1.0
    assert kept in text
    assert not out.with_suffix(".md.tmp").exists()


def test_merge_replaces_only_named_sections():
    run_all = _load_run_all()
    old = ("# B\n\n<!-- bench:bp -->\nold bp\n<!-- /bench:bp -->\n\n"
           "<!-- bench:zzz -->\nzzz kept\n<!-- /bench:zzz -->\n")
    new = {"bp": "<!-- bench:bp -->\nnew bp\n<!-- /bench:bp -->\n",
           "ldpc": "<!-- bench:ldpc -->\nldpc\n<!-- /bench:ldpc -->\n"}
    merged = run_all.merge(old, new)
    assert "new bp" in merged and "old bp" not in merged and "zzz kept" in merged
    # registry order first (ldpc before bp), then sections no longer listed
    assert merged.index("ldpc") < merged.index("new bp") < merged.index("zzz kept")
    assert run_all.parse_sections(merged).keys() == {"ldpc", "bp", "zzz"}
    assert run_all.merge(merged, {}) == merged  # idempotent


def test_registry_scripts_exist_and_names_are_unique():
    run_all = _load_run_all()
    names = [b.name for b in run_all.BENCHMARKS]
    assert len(names) == len(set(names))
    for bench in run_all.BENCHMARKS:
        assert (REPO / "benchmarks" / bench.script).is_file(), bench.script
        assert re.fullmatch(r"[\w.-]+", bench.name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "no-such-bench", "--output", "x.md"], "unknown benchmark"),
        (["--quick"], "--quick needs --output"),
    ],
)
def test_bad_input_is_refused(args, message, tmp_path):
    proc = _run(*[str(tmp_path / a) if a == "x.md" else a for a in args], timeout=60)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout
