"""The digital separation baseline: image codec + CRC + 5G NR LDPC + QAM with link adaptation.

What the chain does with one image and a budget of ``num_symbols`` complex channel uses (the
same budget as the JSCC model, :meth:`DeepJSCC.num_symbols`) and average energy ``Es = 1``
per channel use (the same as JSCC):

1. **Link adaptation** from the SNR *estimate*: :func:`genjscc.core.amc.select_mcs` (TS 38.214
   table, shipped thresholds at BLER 10 % for 512-RE blocks, minus ``margin_db`` of back-off
   because an image needs every one of its blocks, not 90 % of them).
2. **Transport blocks**: the budget is cut into ``num_symbols // 512`` blocks of 512 REs, each
   one 5G NR LDPC code block of the MCS (``transport_config``: TBS payload bits + the TB CRC,
   CRC-16 or CRC-24A). The REs left over (fewer than 512) carry random QPSK padding at
   ``Es = 1``, so both schemes send the same energy; the coded bits are scrambled with a fixed
   pseudo-random sequence (as TS 38.211 does) so that the zero padding of the payload does
   not sit on the low-energy inner QAM points.
3. **Source coding**: the codec (HEIF by default) at the highest quality whose file, behind a
   4-byte length header, fits the ``num_blocks x TBS`` payload bits; zero padding after it.
4. **Receiver** at the *true* SNR: the same channel as JSCC (:class:`JSCCChannel`: AWGN, or
   Rayleigh with one coefficient per image and zero-forcing), exact QAM LLRs with the
   per-symbol effective noise variance, rate recovery, the decoder of the shipped thresholds
   (layered BP, 20 iterations), CRC check of every block.

**Failure and fallback**: the image is lost when any block fails its CRC (reason ``"crc"``),
when the decoded header or file is invalid (``"format"``), or when even the codec's lowest
quality does not fit the payload (``"no_fit"``, decided at the transmitter). A lost image is
replaced by the **mid-gray image** (every value 0.5), and counted. A wrong estimate therefore
shows both effects: below the estimate the blocks fail and the image falls to gray (cliff);
above it the MCS, hence the file size and the quality, stays where the estimate put them
(leveling).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from genjscc.core.amc import load_thresholds, select_mcs, transport_config
from genjscc.core.amc.tables import MCSEntry, TransportConfig
from genjscc.core.channel.snr import db_to_linear
from genjscc.core.fec.crc import CRC
from genjscc.core.fec.decoders import make_decoder
from genjscc.core.jscc.channel import JSCCChannel
from genjscc.core.mapping import constellation
from genjscc.core.source.image_codecs import (
    CODECS,
    EncodedImage,
    decode_image,
    encode_image,
    encode_to_budget,
)
from genjscc.errors import GenjsccError

__all__ = ["FALLBACK_VALUE", "SeparationLink", "SeparationPlan", "SeparationResult"]

FALLBACK_VALUE = 0.5  # a lost image is shown as mid-gray
BLOCK_RE = 512  # REs per transport block: the allocation the shipped thresholds hold for
HEADER_BYTES = 4  # big-endian file length in front of the codec's file


@dataclass(frozen=True)
class SeparationPlan:
    """What the transmitter fixed for one image: MCS, blocks and payload."""

    mcs: MCSEntry
    transport: TransportConfig
    num_symbols: int
    num_blocks: int

    @property
    def payload_bits(self) -> int:
        return self.num_blocks * self.transport.tbs

    @property
    def max_file_bytes(self) -> int:
        return self.payload_bits // 8 - HEADER_BYTES


@dataclass
class SeparationResult:
    """One image through the chain. ``image`` is the reconstruction (the fallback when
    ``failed``); ``reason`` is ``""``, ``"crc"``, ``"format"`` or ``"no_fit"``."""

    image: torch.Tensor
    failed: bool
    reason: str
    mcs_index: int
    quality: float | None
    bpp: float
    file_bytes: int
    num_blocks: int
    block_errors: int
    extra: dict = field(default_factory=dict)


class SeparationLink:
    """Separation baseline for images (module docstring), configurable and reusable.

    Args:
        codec: one of :data:`genjscc.core.source.image_codecs.CODECS` (``"heif"`` default).
        table: TS 38.214 MCS table, 1 (up to 64QAM) or 2 (up to 256QAM).
        target_bler: per-block BLER of the threshold used for the choice (shipped: 0.1).
        margin_db: back-off from the estimate before choosing (dB, default 1).
        decoder, num_iters: LDPC decoder; default those of the shipped thresholds.
    """

    def __init__(self, codec: str = "heif", table: int = 1, target_bler: float = 0.1,
                 margin_db: float = 1.0, decoder: str | None = None,
                 num_iters: int | None = None):
        if codec not in CODECS:
            raise ValueError(f"unknown image codec {codec!r}; choose one of {', '.join(CODECS)}")
        meta = load_thresholds(table)
        self.codec = codec
        self.table = table
        self.target_bler = target_bler
        self.margin_db = margin_db
        self.decoder_name = decoder or meta.decoder
        self.num_iters = num_iters or meta.num_iters
        self._files: dict[tuple[str, int], EncodedImage | None] = {}
        self._tried: dict[str, dict] = {}  # image digest -> quality -> file bytes

    def __repr__(self) -> str:
        return (f"SeparationLink(codec={self.codec!r}, table={self.table}, "
                f"margin_db={self.margin_db}, decoder={self.decoder_name!r})")

    # -- transmitter ----------------------------------------------------------------------
    def plan(self, num_symbols: int, estimated_snr_db: float) -> SeparationPlan:
        """MCS and blocks for a budget of ``num_symbols`` REs and an SNR estimate (dB)."""
        if num_symbols < BLOCK_RE:
            raise ValueError(f"the separation chain needs at least {BLOCK_RE} channel uses, "
                             f"got {num_symbols}")
        entry = select_mcs(estimated_snr_db, self.table, self.target_bler, self.margin_db)
        return SeparationPlan(entry, _transport(entry), num_symbols, num_symbols // BLOCK_RE)

    def source_code(self, image: torch.Tensor, plan: SeparationPlan) -> EncodedImage | None:
        """The codec's file for ``image`` within the plan's payload (cached per image)."""
        digest = _digest(image)
        key = (digest, plan.max_file_bytes)
        if key not in self._files:
            if len(self._tried) > 256:  # bounded memory over long sweeps
                self._tried.clear()
                self._files.clear()
            self._files[key] = encode_to_budget(image, self.codec, plan.max_file_bytes,
                                                self._tried.setdefault(digest, {}))
        return self._files[key]

    def modulate(self, payload: bytes, plan: SeparationPlan,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Complex symbols ``[num_symbols]`` (Es = 1) carrying ``payload`` (zero-padded)."""
        cfg = plan.transport
        raw = np.zeros(plan.payload_bits // 8 + 1, dtype=np.uint8)
        raw[:len(payload)] = np.frombuffer(payload, dtype=np.uint8)
        bits = torch.from_numpy(np.unpackbits(raw)[:plan.payload_bits].copy())
        blocks = _crc(cfg).attach(bits.reshape(plan.num_blocks, cfg.tbs))
        coded = cfg.code.encode(blocks).to(torch.uint8) ^ _scrambler((plan.num_blocks, cfg.e))
        symbols = constellation(plan.mcs.modulation).map(coded).reshape(-1)
        tail = plan.num_symbols - symbols.numel()
        pad_bits = torch.randint(0, 2, (2 * tail,), dtype=torch.uint8, generator=generator)
        return torch.cat([symbols, constellation("qpsk").map(pad_bits)])

    # -- receiver -------------------------------------------------------------------------
    def demodulate(self, y: torch.Tensor, noise_var: torch.Tensor,
                   plan: SeparationPlan) -> tuple[bytes, int]:
        """(payload bytes, number of blocks that failed their CRC) from equalized ``y``."""
        cfg = plan.transport
        used = plan.num_blocks * BLOCK_RE
        qam = constellation(plan.mcs.modulation)
        llr = qam.demap(y[:used].reshape(plan.num_blocks, BLOCK_RE),
                        noise_var[:used].reshape(plan.num_blocks, BLOCK_RE))
        # descramble: a scrambling bit 1 flipped the coded bit, so it flips the LLR's sign
        llr = llr * (1.0 - 2.0 * _scrambler(llr.shape).to(llr.dtype))
        decoder = _decoder(self.decoder_name, self.num_iters, cfg.entry.table, cfg.entry.index)
        bits = decoder(cfg.code.rate_recover(llr.float()))[:, :cfg.k]
        ok = _crc(cfg).check(bits)
        payload = np.packbits(bits[:, :cfg.tbs].reshape(-1).cpu().numpy().astype(np.uint8))
        return payload.tobytes(), int((~ok).sum())

    def send(self, image: torch.Tensor, num_symbols: int, estimated_snr_db: float,
             true_snr_db: float, channel: str = "awgn",
             generator: torch.Generator | None = None) -> SeparationResult:
        """One image ``[3, H, W]`` through transmitter, channel and receiver."""
        plan = self.plan(num_symbols, estimated_snr_db)
        encoded = self.source_code(image, plan)
        if encoded is None:
            return self._failed(image, plan, "no_fit", None, 0)
        header = len(encoded.data).to_bytes(HEADER_BYTES, "big")
        x = self.modulate(header + encoded.data, plan, generator)
        y, snr_rx_db = JSCCChannel(channel)(x[None], true_snr_db, generator)
        noise_var = (1.0 / db_to_linear(snr_rx_db[0])).expand(num_symbols)  # N0 after ZF
        payload, block_errors = self.demodulate(y[0], noise_var, plan)
        if block_errors:
            return self._failed(image, plan, "crc", encoded, block_errors)
        length = int.from_bytes(payload[:HEADER_BYTES], "big")
        if not 0 < length <= plan.max_file_bytes:
            return self._failed(image, plan, "format", encoded, 0)
        try:
            rec = decode_image(payload[HEADER_BYTES:HEADER_BYTES + length], self.codec)
        except GenjsccError:
            return self._failed(image, plan, "format", encoded, 0)
        if rec.shape != image.shape:
            return self._failed(image, plan, "format", encoded, 0)
        return SeparationResult(rec, False, "", plan.mcs.index, encoded.quality, encoded.bpp,
                                len(encoded.data), plan.num_blocks, 0)

    def _failed(self, image, plan, reason, encoded, block_errors) -> SeparationResult:
        return SeparationResult(
            torch.full_like(image, FALLBACK_VALUE), True, reason, plan.mcs.index,
            encoded.quality if encoded else None, encoded.bpp if encoded else 0.0,
            len(encoded.data) if encoded else 0, plan.num_blocks, block_errors)

    def encode_only(self, image: torch.Tensor, quality: float) -> bytes:
        """The codec's file at a given quality (for plots of the codec alone)."""
        return encode_image(image, self.codec, quality)


def _scrambler(shape: tuple[int, int]) -> torch.Tensor:
    """Fixed pseudo-random bits XORed onto the coded bits (as TS 38.211 scrambling does), so
    that zero padding does not map to the low-energy inner QAM points: every symbol has
    ``Es = 1`` on average, like the JSCC symbols."""
    gen = torch.Generator().manual_seed(0x5C2A)
    return torch.randint(0, 2, shape, dtype=torch.uint8, generator=gen)


def _digest(image: torch.Tensor) -> str:
    arr = (image.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return hashlib.sha1(arr.tobytes() + str(arr.shape).encode()).hexdigest()


@lru_cache(maxsize=64)
def _transport_cached(table: int, index: int) -> TransportConfig:
    from genjscc.core.amc import mcs_entry

    return transport_config(mcs_entry(index, table), BLOCK_RE)


def _transport(entry: MCSEntry) -> TransportConfig:
    return _transport_cached(entry.table, entry.index)


def _crc(cfg: TransportConfig) -> CRC:
    return CRC("24A" if cfg.crc_length == 24 else "16")


@lru_cache(maxsize=64)
def _decoder(name: str, num_iters: int, table: int, index: int):
    return make_decoder(name, _transport_cached(table, index).code, num_iters=num_iters)
