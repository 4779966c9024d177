"""The loss-resilient image codec: packets that decode in any subset, exact range coding with
the static table, rejection of corrupt and repeated packets, the HEIF + zfec baseline, the
loss channels (Gilbert-Elliott statistics, the EP traces), the loss evaluation and its CLI.

Packet tests use a small seeded untrained model (the packet layer does not depend on the
weights); one test checks the shipped model's quality.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from genjscc.cli import main
from genjscc.core.channel.packet_loss import (
    LOSS_TRACES,
    GilbertElliott,
    burst_lengths,
    independent_loss,
    loss_trace,
)
from genjscc.core.jscc.images import load_image, psnr_db, sample_image_path
from genjscc.core.resilient.baseline import decode_fec, encode_fec, split_packets
from genjscc.core.resilient.codec import ResilientCodec, load_codec
from genjscc.core.resilient.evaluate import loss_eval, make_channels
from genjscc.core.resilient.model import ResilientConfig, ResilientModel
from genjscc.core.resilient.packets import (
    PRECISION,
    decode_tokens,
    frequency_table,
    interleave_order,
)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    """A held-out photograph cropped to 120x200 (not a multiple of the patch)."""
    return load_image(sample_image_path())[:, :120, :200]


@pytest.fixture(scope="module")
def codec() -> ResilientCodec:
    torch.manual_seed(0)
    model = ResilientModel(ResilientConfig(channels=[8, 8, 8], dim=32, depth=1, heads=2))
    counts = np.arange(1000) % 13 + 1
    return ResilientCodec(model, frequency_table(counts))


@pytest.fixture(scope="module")
def packets(codec, image) -> list[bytes]:
    return codec.encode(image, packet_bytes=64)


def _check_image(out, image):
    assert out is not None and out.shape == image.shape
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


# ----------------------------------------------------------------------------- coding


def test_frequency_table_contract():
    q = frequency_table([0, 5, 1000, 3])
    assert q.sum() == 1 << PRECISION and (q >= 1).all() and q.argmax() == 2
    for bad in ([0, 0], [-1, 3], [7]):
        with pytest.raises(ValueError):
            frequency_table(bad)


def test_interleave_order_is_fixed():
    # numpy's legacy RandomState is frozen: the permutation is part of the packet format
    assert interleave_order(10).tolist() == [1, 3, 0, 4, 2, 9, 5, 6, 8, 7]


def test_all_packets_give_the_exact_tokens(codec, image, packets):
    assert len(packets) > 4 and {len(p) for p in packets} == {64}
    got = decode_tokens(codec.coder, packets, lambda h, w: int(np.prod(codec.grid(h, w))))
    assert got.received == len(packets) and got.rejected == 0
    assert np.array_equal(got.tokens, codec.tokens(image))


def test_any_30_percent_removed_decodes(codec, image, packets):
    n = len(packets)
    gone = round(0.3 * n)
    gen = np.random.default_rng(1)
    subsets = [gen.choice(n, n - gone, replace=False) for _ in range(4)]
    subsets.append(np.arange(gone, n))  # one burst at the start
    for keep in subsets:
        out, report = codec.decode([packets[i] for i in gen.permutation(keep)])
        _check_image(out, image)
        assert report.received == n - gone and 0 < report.concealed < 1


def test_each_packet_alone_decodes(codec, image, packets):
    for p in packets:
        out, report = codec.decode([p])
        _check_image(out, image)
        assert report.received == 1 and report.count == len(packets)


def test_corrupt_and_repeated_packets_are_counted(codec, image, packets):
    bad = []
    for pos in (0, 3, 20, len(packets[0]) - 1):  # header, data, CRC
        b = bytearray(packets[1])
        b[pos] ^= 0x10
        bad.append(bytes(b))
    other = codec.encode(image[:, :64, :64], packet_bytes=64, image_id=9)[0]
    junk = [b"", b"\x00" * 64, packets[2][:40], other]
    out, report = codec.decode([packets[0], *bad, *junk, packets[0], packets[3], packets[3]])
    _check_image(out, image)
    assert (report.received, report.duplicates, report.rejected) == (2, 2, 8)
    none, report = codec.decode(bad + junk[:3])
    assert none is None and report.rejected == 7
    forged = [_forged(packets[0], **f) for f in (  # valid CRCs, absurd headers
        {"height": 0xFFFF, "width": 0xFFFF}, {"count": 0xFFFF}, {"index": 0xFFFF},
        {"tokens": 0xFFFF}, {"words": 0xFFFF}, {"magic": 0}, {"height": 0})]
    none, report = codec.decode(forged)
    assert none is None and report.rejected == len(forged)


def _forged(packet: bytes, **fields) -> bytes:
    """``packet`` with header fields replaced and a fresh CRC."""
    import struct
    import zlib

    from genjscc.core.resilient.packets import HEADER

    values = list(HEADER.unpack_from(packet))
    names = ["magic", "flags", "image_id", "index", "count", "height", "width", "tokens", "words"]
    for k, v in fields.items():
        values[names.index(k)] = v
    body = HEADER.pack(*values) + packet[HEADER.size:-4]
    return body + struct.pack(">I", zlib.crc32(body))


def test_budget_below_and_above_the_natural_rate(codec, image, packets):
    few = codec.encode(image, packet_bytes=64, num_packets=3)
    assert len(few) == 3
    out, report = codec.decode(few)
    _check_image(out, image)
    assert report.concealed > 0.3
    many = codec.encode(image, packet_bytes=64, num_packets=2 * len(packets))
    out, report = codec.decode(many)
    assert report.duplicates == len(packets) and report.concealed == 0
    with pytest.raises(ValueError, match="packet_bytes"):
        codec.encode(image, packet_bytes=10)


def test_shipped_model_quality(image):
    codec = load_codec()
    full = codec.encode(image)
    out, _ = codec.decode(full)
    clean = float(psnr_db(image, out))
    assert clean > 22.0
    kept = [p for i, p in enumerate(full) if i % 3]  # a third lost
    out, report = codec.decode(kept)
    lossy = float(psnr_db(image, out))
    assert report.concealed > 0.2 and 14.0 < lossy < clean


# ----------------------------------------------------------------------------- baseline


def test_fec_decodes_from_any_k_packets(image):
    fec = encode_fec(image, 12, 128, 0.5, ("webp",))
    assert fec.k == split_packets(12, 0.5) == 8 and len(fec.packets) == 12
    ref, _ = decode_fec(fec.packets)
    assert ref is not None and ref.shape == image.shape
    out, rejected = decode_fec([*fec.packets[4:], b"junk", fec.packets[4][:-1] + b"\x00"])
    assert torch.equal(out, ref) and rejected == 2
    assert decode_fec(fec.packets[5:])[0] is None  # 7 of the 8 needed: the cliff


# ----------------------------------------------------------------------------- channels


@pytest.mark.parametrize("rate,burst", [(0.1, 2.5), (0.3, 2.71), (0.0645, 5.0)])
def test_gilbert_elliott_reproduces_rate_and_burst(rate, burst):
    mask = GilbertElliott.from_loss_rate(rate, burst).sample(
        1_000_000, torch.Generator().manual_seed(7))
    assert abs(mask.double().mean().item() / rate - 1) < 0.05
    assert abs(burst_lengths(mask).double().mean().item() / burst - 1) < 0.05


def test_independent_loss_and_traces():
    mask = independent_loss(0.2).sample(200_000, torch.Generator().manual_seed(3))
    assert abs(mask.double().mean().item() - 0.2) < 0.005
    for name, (rate, burst) in LOSS_TRACES.items():
        model = loss_trace(name.lower())
        assert math.isclose(model.loss_rate, rate, rel_tol=1e-9)
        assert math.isclose(model.mean_burst_length, burst, rel_tol=1e-9)
    with pytest.raises(ValueError, match="EP1"):
        loss_trace("EP7")


# ----------------------------------------------------------------------------- evaluation


def test_loss_eval_rows(codec, image):
    small = image[:, :64, :96]
    channels = make_channels([0.0, 0.5], [2.5])
    rows = loss_eval([small], codec, ["resilient", "heif-fec"], channels, [1.0], trials=2,
                     packet_bytes=64, codecs=("webp",), with_ms_ssim=False)
    assert len(rows) == 4
    for r in rows:
        assert {"scheme", "loss_rate", "burst", "budget_bpp", "psnr_mean", "psnr_p5",
                "ms_ssim_mean", "failures", "nothing_received", "images", "trials",
                "setting"} <= set(r)
        assert r["nothing_received"] <= r["failures"]
    lossless = [r for r in rows if r["loss_rate"] == 0]
    assert all(r["failures"] == 0 for r in lossless)
    fec = next(r for r in lossless if r["scheme"] == "heif-fec")
    assert fec["setting"].startswith("redundancy")


def test_loss_eval_cli_rejects_bad_options(tmp_path, capsys):
    for flags in (["--loss-rate", "1.5"], ["--burst", "0.5"], ["--schemes", "jpeg"],
                  ["--budget-bpp", "0"], ["--traces", "EP9"]):
        assert main(["loss-eval", "--images", str(tmp_path), *flags]) == 2
    assert "loss" in capsys.readouterr().err


def test_loss_eval_cli_json(tmp_path, capsys, image):
    from genjscc.core.jscc.images import save_image

    save_image(image[:, :64, :96], tmp_path / "a.png")
    assert main(["loss-eval", "--images", str(tmp_path), "--loss-rate", "0.2", "--burst", "0",
                 "--budget-bpp", "1", "--trials", "1", "--packet-bytes", "64",
                 "--schemes", "heif-fec", "--codecs", "webp", "--no-ms-ssim", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["scheme"] == "heif-fec" and rows[0]["channel"] == "iid"
