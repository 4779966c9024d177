"""Tests of genjscc.core.fec.crc against py3gpp and catalogued check values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from py3gpp import nrCRCDecode, nrCRCEncode

from genjscc.core.fec.crc import CRC, CRC_POLYNOMIALS

NAMES = list(CRC_POLYNOMIALS)


def _bits_of_bytes(data: bytes) -> torch.Tensor:
    return torch.tensor(np.unpackbits(np.frombuffer(data, dtype=np.uint8)), dtype=torch.uint8)


def _int_of_bits(bits: torch.Tensor) -> int:
    return int("".join(str(int(b)) for b in bits), 2)


@pytest.mark.parametrize("name", NAMES)
def test_matches_py3gpp(name):
    crc = CRC(name)
    rng = np.random.default_rng(0)
    for k in (1, 7, 24, 100, 1000):
        for _ in range(3):
            a = rng.integers(0, 2, k)
            ref = nrCRCEncode(a.astype(int), name).reshape(-1)
            ours = crc.attach(torch.tensor(a, dtype=torch.uint8))
            assert ours.dtype == torch.uint8 and ours.shape == (k + crc.length,)
            np.testing.assert_array_equal(ours.numpy(), ref, err_msg=f"{name} k={k}")
            _, err = nrCRCDecode(ours.numpy().astype(int), name)
            assert int(np.asarray(err).reshape(-1)[0]) == 0


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("16", 0x31C3),  # CRC-16/XMODEM
        ("24A", 0xCDE703),  # CRC-24/LTE-A
        ("24B", 0x23EF52),  # CRC-24/LTE-B
    ],
)
def test_catalogue_check_values(name, check):
    """CRC of ASCII "123456789" (reveng catalogue: init 0, no reflection, no final XOR)."""
    crc = CRC(name)
    assert _int_of_bits(crc.compute(_bits_of_bytes(b"123456789"))) == check


def test_polynomials_and_lengths():
    assert CRC_POLYNOMIALS["24A"] == (24, 0x864CFB)
    assert CRC_POLYNOMIALS["24B"] == (24, 0x800063)
    assert CRC_POLYNOMIALS["24C"] == (24, 0xB2B117)
    assert CRC_POLYNOMIALS["16"] == (16, 0x1021)
    assert CRC_POLYNOMIALS["11"] == (11, 0xE21)
    for form in ("24A", "crc24a", "CRC24A", "CRC-24A", "crc_24a"):
        assert CRC(form).name == "24A" and CRC(form).length == 24
    assert CRC("crc11").length == 11 and CRC("16").length == 16


@pytest.mark.parametrize("name", NAMES)
def test_attach_check_round_trip_batched(name):
    crc = CRC(name)
    g = torch.Generator().manual_seed(1)
    bits = torch.randint(0, 2, (3, 4, 333), generator=g, dtype=torch.uint8)
    coded = crc.attach(bits)
    assert coded.shape == (3, 4, 333 + crc.length)
    assert torch.equal(coded[..., :333], bits)
    assert torch.equal(coded[..., 333:], crc.compute(bits))
    ok = crc.check(coded)
    assert ok.dtype == torch.bool and ok.shape == (3, 4) and bool(ok.all())
    # Batched result equals row-by-row.
    assert torch.equal(crc.compute(bits[1, 2]), crc.compute(bits)[1, 2])
    # Zero-state CRC: the codeword's own CRC is zero.
    assert not bool(crc.compute(coded).any())
    # Bool and int64 inputs give the same result.
    assert torch.equal(crc.attach(bits.bool()), coded)
    assert torch.equal(crc.attach(bits.to(torch.int64)), coded)


@pytest.mark.parametrize("name", NAMES)
def test_single_bit_errors_detected(name):
    crc = CRC(name)
    g = torch.Generator().manual_seed(2)
    coded = crc.attach(torch.randint(0, 2, (150,), generator=g, dtype=torch.uint8))
    n = coded.shape[0]
    corrupted = coded.repeat(n, 1) ^ torch.eye(n, dtype=torch.uint8)  # row i flips bit i
    assert not bool(crc.check(corrupted).any())


def test_burst_errors_up_to_length_detected():
    """A CRC of degree L detects every error burst of length <= L."""
    crc = CRC("24A")
    coded = crc.attach(
        torch.randint(0, 2, (200,), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    )
    n = coded.shape[0]
    g = torch.Generator().manual_seed(4)
    patterns = []
    for _ in range(300):
        length = int(torch.randint(2, crc.length + 1, (1,), generator=g))
        start = int(torch.randint(0, n - length + 1, (1,), generator=g))
        e = torch.zeros(n, dtype=torch.uint8)
        e[start + 1 : start + length - 1] = torch.randint(
            0, 2, (length - 2,), generator=g, dtype=torch.uint8
        )
        e[start] = e[start + length - 1] = 1
        patterns.append(e)
    assert not bool(crc.check(coded ^ torch.stack(patterns)).any())


def test_empty_and_large_inputs():
    crc = CRC("24A")
    assert torch.equal(
        crc.compute(torch.zeros(2, 0, dtype=torch.uint8)), torch.zeros(2, 24, dtype=torch.uint8)
    )
    assert crc.compute(torch.zeros(0, 50, dtype=torch.uint8)).shape == (0, 24)
    # An LDPC transport block size: matches py3gpp there too.
    a = np.random.default_rng(5).integers(0, 2, 8424)
    ref = nrCRCEncode(a.astype(int), "24B").reshape(-1)[-24:]
    np.testing.assert_array_equal(
        CRC("24B").compute(torch.tensor(a, dtype=torch.uint8)).numpy(), ref
    )


def test_bad_input_raises():
    crc = CRC("16")
    with pytest.raises(ValueError):
        CRC("24D")
    with pytest.raises(TypeError):
        CRC(24)
    with pytest.raises(TypeError):
        crc.compute(torch.zeros(10))  # float
    with pytest.raises(TypeError):
        crc.compute(np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="0 and 1"):
        crc.compute(torch.full((10,), 3, dtype=torch.uint8))
    with pytest.raises(ValueError):
        crc.check(torch.zeros(10, dtype=torch.uint8))  # shorter than the CRC itself
    with pytest.raises(ValueError):
        crc.compute(torch.tensor(1, dtype=torch.uint8))  # no bit axis


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    crc = CRC("24A")
    bits = torch.randint(
        0, 2, (64, 1000), generator=torch.Generator().manual_seed(6), dtype=torch.uint8
    )
    coded = crc.attach(bits.cuda())
    assert coded.device.type == "cuda"
    assert torch.equal(coded.cpu(), crc.attach(bits))
    assert bool(crc.check(coded).all())


# ------------------------------------------------------------- transport-block framing


@pytest.mark.parametrize(("num_bits", "k", "crc_name", "codewords"), [
    (1, 24, "24A", 2), (40, 64, "24A", 1), (41, 64, "24A", 2), (100, 50, None, 2),
])
def test_framing_pads_and_ends_with_the_crc(num_bits, k, crc_name, codewords):
    from genjscc.core.fec.framing import frame, max_payload_bits, num_codewords, unframe

    crc = CRC(crc_name) if crc_name else None
    crc_len = crc.length if crc else 0
    payload = np.random.default_rng(num_bits).integers(0, 2, num_bits).astype(np.uint8)
    info = frame(payload, k, crc)
    assert info.shape == (codewords, k) == (num_codewords(num_bits, k, crc_len), k)
    flat = info.reshape(-1)
    assert np.array_equal(flat[:num_bits].numpy(), payload)
    assert not flat[num_bits:codewords * k - crc_len].any()  # zero padding
    bits, ok = unframe(flat, crc, num_bits)
    assert np.array_equal(bits, payload) and ok is (True if crc else None)
    padded, _ = unframe(flat, crc)  # the length unknown: the padding is kept
    assert padded.size == max_payload_bits(codewords, k, crc_len)
    whole, _ = unframe(flat, crc, whole_bytes=True)
    assert whole.size == padded.size - padded.size % 8
    if crc:
        flat[0] ^= 1
        assert unframe(flat, crc, num_bits)[1] is False
