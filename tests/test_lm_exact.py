"""LM coding that decodes on any machine: integer lm-small, golden containers, kernel sets,
thread counts, batch shapes, oneDNN on and off, float fingerprints and per-chunk methods."""

from __future__ import annotations

import lzma
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from genjscc.core.source import (
    ContainerError,
    _lm_native,
    compress,
    decompress,
    load_model,
    parse_container,
)
from genjscc.core.source import fixed_point as fp
from genjscc.core.source.classic import classic_compress
from genjscc.core.source.quantized import ARITHMETIC
from genjscc.core.source.small import SmallByteCoderModel, SmallByteLM, SmallLMConfig, save_small_lm
from genjscc.errors import GenjsccError
from genjscc.testing.lm_exact import lm_step_for, run_config

DATA = Path(__file__).resolve().parent / "data"
TEXT = (DATA / "golden-text.txt").read_bytes()[:3000]

def expected_kernel(config: dict, capability: str) -> str:
    """What a worker reports it stepped with (``torch`` where no native kernel is built)."""
    choice = lm_step_for(config, capability)
    if choice == "torch" or not _lm_native.available():
        return "torch"
    return "portable" if choice == "portable" else _lm_native.isa()


@pytest.fixture(scope="module")
def small():
    return load_model("small")


def supported_capabilities() -> list[str]:
    """The ATen kernel sets this CPU runs (a request it cannot serve falls back)."""
    found = []
    for capability in ("default", "avx2", "avx512"):
        done = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
            env={**os.environ, "ATEN_CPU_CAPABILITY": capability}, capture_output=True,
            text=True, timeout=120)
        if done.stdout.strip().lower() == capability:
            found.append(capability)
    return found


@pytest.mark.parametrize("name", ["golden-text", "golden-mixed"])
def test_golden_containers_decode_byte_exactly(small, name: str) -> None:
    """Containers committed to tests/data (made on another machine, with another kernel set
    maybe) decode exactly here, whatever CPU runs the tests."""
    blob = (DATA / f"{name}.gjz").read_bytes()
    original = DATA / (f"{name}.txt" if name.endswith("text") else f"{name}.bin")
    assert parse_container(blob).header.arithmetic == ARITHMETIC
    result = decompress(blob, small)
    assert result.ok, result.summary()
    assert result.data == original.read_bytes()
    assert compress(original.read_bytes(), small, keep_chunks=True,
                    chunk_size=parse_container(blob).header.chunk_size) == blob


def test_golden_mixed_container_mixes_methods() -> None:
    methods = {e.method for e in parse_container((DATA / "golden-mixed.gjz").read_bytes()
                                                 ).entries}
    assert {"model", "stored"} <= methods and methods & {"xz", "zstd"}


@pytest.mark.slow
def test_containers_decode_across_kernel_sets_threads_batches_and_onednn(tmp_path) -> None:
    """Encode under each kernel set this CPU supports (1 thread, batch 1, oneDNN on, the torch
    step; and 2 threads, batch 64, oneDNN off, the native step: portable C or AVX2, see
    lm_kernel), decode every container under every other: all exact, and the same batch
    gives the same container bytes everywhere."""
    capabilities = supported_capabilities()
    assert "default" in capabilities
    source = tmp_path / "in.txt"
    source.write_bytes(TEXT[:1200])
    configs = [dict(threads=1, batch=1, onednn=True), dict(threads=2, batch=64, onednn=False)]
    made: dict[tuple, Path] = {}
    for capability in capabilities:
        for k, config in enumerate(configs):
            out = tmp_path / f"{capability}-{k}.gjz"
            info = run_config({**config, "input": str(source), "output": str(out)},
                              capability)
            assert info["capability"].lower() == capability
            assert info["lm_kernel"] == expected_kernel(config, capability)
            made[(capability, k)] = out
    for k in range(len(configs)):  # same rows: identical bytes from every kernel set
        assert len({made[(c, k)].read_bytes() for c in capabilities}) == 1
    for capability in capabilities:
        for config in configs:
            info = run_config({**config, "input": str(source),
                               "decode": [str(p) for p in made.values()]}, capability)
            assert all(info["decoded"].values()), (capability, config, info)


def test_float_model_container_names_its_arithmetic_and_is_refused_elsewhere(tmp_path) -> None:
    """A float byte model's container records the machine's float arithmetic; a decoder with
    another (here: another kernel set) refuses before decoding, naming both."""
    torch.manual_seed(0)
    path = tmp_path / "float.safetensors"
    save_small_lm(SmallByteLM(SmallLMConfig(hidden=16, embed=8)), path)
    model = load_model(str(path))
    assert isinstance(model, SmallByteCoderModel)
    blob = classic = compress(TEXT[:600], model, chunk_size=200, keep_chunks=True)
    assert {e.method for e in parse_container(classic).entries} <= {"xz", "zstd", "stored"}
    header = parse_container(blob).header
    arithmetic = header.arithmetic
    assert arithmetic.startswith("float:cpu:")
    assert decompress(blob, model).data == TEXT[:600]
    # a random model loses to xz on every chunk: code them by the model all the same, so
    # that decoding needs its arithmetic (a container of classic chunks decodes anywhere)
    from genjscc.core.source.coding import encode_chunks
    from genjscc.core.source.container import crc32, pack_container

    pieces = [TEXT[i:i + 200] for i in range(0, 600, 200)]
    payloads = encode_chunks(model, [list(p) for p in pieces], rows=header.rows)
    blob = pack_container(header, payloads, [200] * 3, [crc32(p) for p in pieces])
    assert decompress(blob, model).data == TEXT[:600]
    (tmp_path / "c.gjz").write_bytes(blob)
    other = "default" if torch.backends.cpu.get_cpu_capability() != "DEFAULT" else "avx2"
    code = ("import sys; from genjscc.core.source import decompress, load_model\n"
            f"decompress(open({str(tmp_path / 'c.gjz')!r}, 'rb').read(), "
            f"load_model({str(path)!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": other}, timeout=120)
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT" and "avx2" not in \
            supported_capabilities():
        pytest.skip("this CPU runs one kernel set only")
    assert done.returncode != 0
    assert "another arithmetic" in done.stderr and arithmetic in done.stderr
    # the container compress made (every chunk xz, zstd or stored) needs no model arithmetic
    (tmp_path / "c.gjz").write_bytes(classic)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": other}, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]


def test_integer_frequency_tables_are_valid_and_row_independent(small) -> None:
    gen = torch.Generator().manual_seed(3)
    state = small.start_state(9)
    for _ in range(20):
        tokens = torch.randint(0, 256, (9,), generator=gen)
        state, freqs = small.step(state, tokens)
        assert freqs.dtype == torch.int64 and freqs.shape == (9, 256)
        assert bool((freqs >= 1).all()) and bool((freqs.sum(1) == 1 << 24).all())
    # a row alone gets what it gets among others
    _, one = small.step(state[..., 4:5, :].contiguous(), tokens[4:5])
    _, many = small.step(state, tokens)
    assert torch.equal(one[0], many[4])


def test_exact_matmul_check_passes_here_and_refuses_too_long_products() -> None:
    fp.check_exact_matmul(768)
    with pytest.raises(GenjsccError, match="not exact"):
        fp.check_exact_matmul(fp.MAX_EXACT_K + 1)


def test_frequencies_handle_extreme_logits() -> None:
    exp = fp.exp_table()
    logits = torch.tensor([[0] * 256, [10**9] + [-(10**9)] * 255, list(range(256))])
    q = fp.frequencies(logits, exp)
    assert bool((q >= 1).all()) and bool((q.sum(1) == 1 << 24).all())
    assert q[1, 0] == (1 << 24) - 255 and len(set(q[0].tolist())) == 1


def binary_sample() -> bytes:
    """Structured binary data the text model cannot predict: deflate streams, records."""
    rng = np.random.default_rng(5)
    records = b"".join(np.array([i, i * 3 % 97, -i], dtype="<i4").tobytes()
                       for i in range(600))
    packed = zlib.compress(rng.integers(0, 16, 8000, dtype=np.uint8).tobytes(), 6)
    return records + packed + records[:3000]


def test_binary_input_costs_at_most_the_better_classic_coder(small) -> None:
    data = binary_sample()
    blob = compress(data, small)
    best = min(len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
               len(classic_compress("zstd", data)))
    assert len(blob) <= 1.02 * best + 200  # + the container's header and one table entry
    assert decompress(blob, small).data == data
    assert {e.method for e in parse_container(blob).entries} <= {"xz", "zstd", "stored"}


def test_keep_chunks_keeps_them(small) -> None:
    data = binary_sample()
    blob = compress(data, small, keep_chunks=True)
    assert parse_container(blob).header.chunk_size == 2048
    assert decompress(blob, small).data == data


def test_crafted_classic_payload_is_a_lost_chunk_not_a_crash(small) -> None:
    """A classic payload whose CRCs were recomputed by an attacker: decoding it fails or
    gives other bytes, caught per chunk; the other chunks survive."""
    from genjscc.core.source.container import _entry_crc, parse_header

    data = binary_sample()[:6000]
    blob = bytearray(compress(data, small, chunk_size=2048, keep_chunks=True))
    parsed = parse_container(bytes(blob))
    index = next(i for i, e in enumerate(parsed.entries) if e.method in ("xz", "zstd"))
    entry = parsed.entries[index]
    blob[entry.offset:entry.offset + entry.payload_length] = b"\xff" * entry.payload_length
    start = parse_header(bytes(blob))[1] + 16 * index
    crc = _entry_crc(index, bytes(blob[start:start + 12]),
                     bytes(blob[entry.offset:entry.offset + entry.payload_length]))
    blob[start + 12:start + 16] = crc.to_bytes(4, "little")
    result = decompress(bytes(blob), small)
    assert list(result.problems) == [index] and entry.method in result.problems[index]


def test_container_rows_above_chunks_are_refused() -> None:
    from genjscc.core.source.container import ContainerHeader, pack_container

    header = ContainerHeader(original_length=10, chunk_size=10, n_chunks=1, rows=9, threads=1,
                             precision=24, device="cpu", model_id="m", model_sha256="00" * 32,
                             torch_version="x")
    with pytest.raises(ValueError, match="rows"):
        pack_container(header, [b"0123456789"], [0], [0], ["stored"])


def test_other_arithmetic_name_is_refused(small) -> None:
    blob = bytearray(compress(TEXT[:500], small, keep_chunks=True))
    tampered = bytes(blob).replace(ARITHMETIC.encode(), b"int8-lut/9")
    from genjscc.core.source.container import crc32, parse_header

    # re-seal the header CRC so that only the arithmetic differs
    _, length = parse_header(bytes(blob))
    head = tampered[:length - 4]
    tampered = head + crc32(head).to_bytes(4, "little") + tampered[length:]
    with pytest.raises(ContainerError, match="another arithmetic"):
        decompress(tampered, small)


def test_crafted_header_with_more_rows_than_chunks_is_refused_before_work(small) -> None:
    """A 2-chunk container whose header claims 65535 rows (CRC recomputed): refused at once,
    where it used to make the decoder step 65535 rows per symbol."""
    import struct

    from genjscc.core.source.container import crc32, parse_header

    blob = bytearray(compress(TEXT[:300], small, chunk_size=150, keep_chunks=True))
    _, length = parse_header(bytes(blob))
    struct.pack_into("<H", blob, 28, 0xFFFF)  # rows
    struct.pack_into("<I", blob, length - 4, crc32(bytes(blob[:length - 4])))
    with pytest.raises(ContainerError, match="rows"):
        decompress(bytes(blob), small)


def crafted_long_chunk(small) -> bytes:
    """A 100-byte container whose header (CRCs recomputed) states one 16 MiB model chunk
    behind a 4-byte payload: decoding it would take 2**24 model steps (about an hour)."""
    import struct

    from genjscc.core.source.container import _entry_crc, crc32, parse_header

    blob = bytearray(compress(TEXT[:40], small, chunk_size=64, keep_chunks=True))
    _, length = parse_header(bytes(blob))
    struct.pack_into("<QII", blob, 12, 1 << 24, 1 << 24, 1)  # original, chunk size, chunks
    struct.pack_into("<I", blob, length - 4, crc32(bytes(blob[:length - 4])))
    payload = b"\x00" * 4
    entry = struct.pack("<III", len(payload), 1 << 24, 0)
    blob[length:] = entry + _entry_crc(0, entry, payload).to_bytes(4, "little") + payload
    return bytes(blob)


def test_decoding_budget_refuses_a_crafted_length_before_any_work(small) -> None:
    from genjscc.core.source.codec import DecodingBudgetExceeded

    blob = crafted_long_chunk(small)
    assert parse_container(blob).header.original_length == 1 << 24  # the parser accepts it
    start = time.monotonic()
    with pytest.raises(DecodingBudgetExceeded, match="16777216 bytes"):
        decompress(blob, small, max_output=1 << 20)
    assert time.monotonic() - start < 5
    # within the budget a real container decodes as before
    assert decompress(compress(TEXT[:300], small), small, max_output=300).data == TEXT[:300]
    with pytest.raises(DecodingBudgetExceeded):
        decompress(compress(TEXT[:300], small), small, max_output=299)


def test_cli_max_output_refuses_with_one_line(small, tmp_path) -> None:
    from genjscc.cli import main

    src = tmp_path / "crafted.gjz"
    src.write_bytes(crafted_long_chunk(small))
    out = tmp_path / "out.bin"
    assert main(["decompress", str(src), str(out), "--max-output", "1M", "-q"]) == 2
    assert not out.exists()
    assert main(["decompress", str(src), str(out), "--max-output", "lots"]) == 2
