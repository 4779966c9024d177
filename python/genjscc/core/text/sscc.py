"""LM-based separate source-channel coding (LM-SSCC) of sentences.

Source part (:class:`LMSentenceSource`): each sentence is coded alone by the LM range coder
(``genjscc.core.source.coding``; lm-small by default, exact integer arithmetic) into a
*stream* of bits, in one of two forms chosen by its first bit. The LM is conditioned on a fixed
prompt (:data:`SENTENCE_CONTEXT`, known to both ends, not sent), and every CRC also covers 16
bits derived from the LM's weights and the prompt (not sent either), so a receiver configured
with another LM or prompt loses the sentence instead of decoding it into other text.

* ``0`` **terminated** (every text without a newline, shorter than 64 KiB): the LM codes the
  text followed by a newline (``text + "\\n"``), which marks its end; the coder's payload is
  cut to the fewest bits that decode (:func:`~genjscc.core.source.coding.encode_chunks_bits`),
  then a CRC-16 over the form bit and the payload (TS 38.212's 16-bit polynomial, the CRC
  complemented so that an all-zero word fails). Overhead per sentence: 1 + 16 bits and the
  cost of the newline (about 5 bits with lm-small on Europarl sentences).
* ``1`` **framed** (texts with a newline or too long for the model): byte frames of at most
  :data:`MAX_PIECE_BYTES` text bytes each:

  =========  =======  =====================================================================
  offset     bytes    field
  =========  =======  =====================================================================
  0          1        ``n``: text bytes (= LM symbols) of this frame, 0..255
  1          1        ``w``: 32-bit words of range-coder payload, 0..255
  2          4 w      the payload (the coder's words, little-endian)
  2 + 4 w    2        CRC-16 (polynomial 0x1021, started at the 16 tag bits) of the frame
  =========  =======  =====================================================================

Not the ``.gjz`` container of ``genjscc compress`` (its header, model id and chunk table cost
dozens of bytes, more than a compressed sentence): the receiver knows the model by
configuration, and the stream's length in bits by signalling (as a transport block size).

Channel part (:class:`SentenceChannelCode`): the stream's bits are cut into the code's
information blocks, the last padded with zeros: fixed short codes (LDPC(49,24),
Polar(64,32), ...) in ``ceil(bits / k)`` codewords, or 5G NR LDPC with the stream's own
length (one code block up to 3840 bits, else equal blocks of at most 3840) at a given rate.
The coded bits of a sentence are concatenated, padded to whole symbols and mapped (BPSK or
QPSK, unit energy per complex channel use). The receiver is told the stream's length in bits
and the noise variance per symbol.

A sentence is *lost* when its CRC fails, its lengths are impossible, the LM decoder rejects
the payload (or finds no terminator) or the bytes are not UTF-8: the receiver then outputs
``None`` (text-eval scores it as the empty string ``""``, so a lost sentence costs its whole
length in CER and all its n-grams).
"""

from __future__ import annotations

import binascii
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from genjscc.core.fec.crc import CRC

__all__ = [
    "MAX_PIECE_BYTES",
    "PRESETS",
    "SENTENCE_CONTEXT",
    "LMSentenceSource",
    "SSCCConfig",
    "SentenceChannelCode",
    "pack_frame",
    "parse_stream",
    "scheme_config",
]

MAX_PIECE_BYTES = 255
SENTENCE_CONTEXT = ("it is extracted from pine tar and is also found in certain fossil resins\n"
                    "you may use your energy banks to fire a damaging heat ray\n"
                    "for example bar sinister sinistral of or on the left\n")
"""The fixed prompt every sentence is coded after (both ends know it; not sent): three
sentences of the training corpus (``general-en/sentences.txt``, lowercased) in the form the
chain carries, one per line, so that the LM starts a sentence knowing the genre: about 0.9
bits per word less with SmolLM2 and 0.35 with lm-small on Europarl sentences (docs/text.md)."""
NR_MAX_BLOCK_BITS = 3840  # base graph 2's largest code block (TS 38.212 5.2.2)


@dataclass(frozen=True)
class SSCCConfig:
    """A channel code and modulation for LM-SSCC streams.

    ``code``: a shipped code name (``LDPC_N49_K24``, ``POLAR_N64_K32``, ...) or ``5gnr``;
    ``decoder``: a name of ``genjscc.core.fec.decoders.make_decoder`` (``bp``, ``ecct``, ...);
    ``modulation``: ``bpsk`` or ``qpsk``; ``rate``: 5G NR only, information bits per coded bit;
    ``iterations``: BP iterations (unused by ECCT); ``max_llr_ebno_db``: the LLRs are
    computed for a noise variance no smaller than that of this Eb/N0 (dB, per information bit
    of the code), or None for the true one. The shipped ECCT models were trained at Eb/N0
    2-7 dB (their cards); fed the large LLRs of a cleaner channel they fail (LDPC(49,24): half
    the words wrong at 10 dB, all at 14 dB), so their chains de-rate the LLRs to 7 dB: the
    decoder then sees inputs like its training data, with less noise. Both decoders return a
    word whose hard decisions already satisfy every parity check as it is: BP by its early stop
    (checked before the first iteration), ECCT by its ``syndrome_exit`` (the network runs on
    the other words only).
    """

    code: str = "5gnr"
    decoder: str = "bp"
    modulation: str = "qpsk"
    rate: float = 0.5
    iterations: int = 50
    max_llr_ebno_db: float | None = None


PRESETS: dict[str, SSCCConfig] = {
    "lm-sscc": SSCCConfig("5gnr", "bp", "qpsk", 0.5),
    "lm-sscc-r13": SSCCConfig("5gnr", "bp", "qpsk", 1 / 3),
    "lm-sscc-ecct": SSCCConfig("LDPC_N49_K24", "ecct", "bpsk", max_llr_ebno_db=7.0),
    "lm-sscc-bp": SSCCConfig("LDPC_N49_K24", "bp", "bpsk"),
    "lm-sscc-polar-ecct": SSCCConfig("POLAR_N64_K32", "ecct", "bpsk", max_llr_ebno_db=7.0),
    "lm-sscc-polar-bp": SSCCConfig("POLAR_N64_K32", "bp", "bpsk"),
}
"""Scheme name -> configuration: the strong chain (5G NR LDPC with the sentence's length, QPSK,
BP-50) and the short-code chains (ECCT or BP-50, BPSK)."""


def scheme_config(name: str) -> SSCCConfig:
    """The :data:`PRESETS` entry ``name``; ValueError listing them otherwise."""
    if name not in PRESETS:
        raise ValueError(f"unknown LM-SSCC scheme {name!r}; use one of {', '.join(PRESETS)}")
    return PRESETS[name]


# ----------------------------------------------------------------------------- frames


def pack_frame(n_symbols: int, payload: bytes, tag: int = 0) -> bytes:
    """One frame (see module): ``n_symbols`` text bytes coded as ``payload``; ``tag`` is the
    CRC's start value (16 bits naming the LM and prompt, not sent)."""
    if not 0 <= n_symbols <= MAX_PIECE_BYTES:
        raise ValueError(f"n_symbols {n_symbols} outside [0, {MAX_PIECE_BYTES}]")
    if len(payload) % 4 or len(payload) // 4 > 255:
        raise ValueError(f"payload of {len(payload)} bytes: need whole 32-bit words, <= 255")
    body = bytes([n_symbols, len(payload) // 4]) + payload
    return body + binascii.crc_hqx(body, tag).to_bytes(2, "big")


def parse_stream(stream: bytes, tag: int = 0) -> list[tuple[int, bytes]] | None:
    """The ``(n_symbols, payload)`` of each frame of a stream, or None when a CRC (started
    at ``tag``, as :func:`pack_frame`) fails or the lengths run past the end. Bytes after the
    last whole frame (code padding) are ignored only if they are zero."""
    frames, pos = [], 0
    while pos < len(stream):
        if pos + 4 > len(stream):
            return None if any(stream[pos:]) else frames
        n, w = stream[pos], stream[pos + 1]
        end = pos + 2 + 4 * w
        if end + 2 > len(stream):
            return None
        if binascii.crc_hqx(stream[pos:end], tag) != int.from_bytes(stream[end:end + 2], "big"):
            # zero padding after the last frame reads as n = w = 0 with a zero CRC mismatch
            return frames if frames and not any(stream[pos:]) else None
        frames.append((n, stream[pos + 2:end]))
        pos = end + 2
    return frames


# ----------------------------------------------------------------------------- source


class LMSentenceSource:
    """Sentence <-> stream of bits with an LM range coder (see module).

    ``model``: an ``lm`` zoo name or spec of ``genjscc.core.source.codec.load_model``
    (``small`` = lm-small, integer and exact). ``rows``: sentences stepped together, for an
    exact (integer) model only: a float model's probabilities depend on the batch they are
    computed in, and the decoder cannot rebuild the encoder's batch (a lost sentence, a
    sentence decoded later), so a float model codes and decodes each sentence alone.
    Decoding keeps a cache from the coded bits to the text: the LM decoder is a deterministic
    function of them, so a payload seen before is not decoded again (exact, and it makes
    evaluation at many energies affordable). ``progress``: called as ``progress(symbols_now,
    total)`` while the LM codes (``total`` 0 while decoding: unknown with terminators).
    ``context``: the text every sentence is coded after (:data:`SENTENCE_CONTEXT`); the
    decoder must be given the same.
    """

    def __init__(self, model: str = "small", rows: int = 64,
                 progress: Callable[[int, int], None] | None = None,
                 context: str = SENTENCE_CONTEXT):
        from genjscc.core.source.codec import load_model

        self.progress = progress
        self.lm = load_model(model)
        self.context = self.lm.tokenize(context.encode("utf-8"))
        # The CRC also covers (without sending them) 16 bits that name the LM and the prompt,
        # so a receiver configured otherwise loses the sentence instead of decoding other text.
        digest = hashlib.sha256(f"{self.lm.weights_sha256}\n{context}".encode()).digest()
        self._tag = np.unpackbits(np.frombuffer(digest[:2], dtype=np.uint8))
        self._tag_value = int.from_bytes(digest[:2], "big")
        self.rows = rows if getattr(self.lm, "arithmetic", "") else 1
        self._cache: dict[bytes, str | None] = {}
        self._stop: np.ndarray | None = None

    @property
    def stop(self) -> np.ndarray:
        """Boolean mask of the model's symbols whose bytes hold a newline (terminators)."""
        if self._stop is None:
            self._stop = np.array([b"\n" in _symbol_bytes(self.lm, s)
                                   for s in range(self.lm.vocab_size)], dtype=bool)
        return self._stop

    def terminated(self, text: str) -> bool:
        """Whether ``text`` goes in the terminated form: no newline, within the context, and
        a model whose symbols each stand for their own bytes (a tokenizer that escapes some
        bytes with a two-symbol sequence could make a newline symbol mean something else)."""
        tokens = getattr(self.lm, "tokens", None)
        return "\n" not in text and getattr(tokens, "escape_id", None) is None and \
            len(text.encode("utf-8")) < self._max_terminated()

    def _max_terminated(self) -> int:
        """Symbols of the longest terminated form (the model's context less the prompt)."""
        return min(self.lm.max_symbols - len(self.context) - 1, 1 << 16)

    @staticmethod
    def pieces(text: str) -> list[bytes]:
        """The UTF-8 bytes of ``text`` in pieces of at most :data:`MAX_PIECE_BYTES` (one
        empty piece for an empty text, so that an empty sentence is still a frame)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        data = text.encode("utf-8")
        return [data[i:i + MAX_PIECE_BYTES] for i in range(0, len(data), MAX_PIECE_BYTES)] \
            or [b""]

    def encode(self, texts: list[str]) -> list[np.ndarray]:
        """One stream per text: uint8 0/1 bits (see module for the two forms)."""
        from genjscc.core.source.coding import encode_chunks, encode_chunks_bits

        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"text must be str, got {type(t).__name__}")
        terminated = [self.terminated(t) for t in texts]
        short = [i for i, term in enumerate(terminated) if term]
        long_ = [i for i, term in enumerate(terminated) if not term]
        streams: list[np.ndarray] = [np.zeros(0, np.uint8)] * len(texts)
        symbols = [self.lm.tokenize((texts[i] + "\n").encode("utf-8")) for i in short]
        # stepped together in groups of similar length; the integer LM codes each sentence
        # the same in any group, as decode() relies on
        order = sorted(range(len(short)), key=lambda j: len(symbols[j]))
        coded = encode_chunks_bits(self.lm, [symbols[j] for j in order],
                                   rows=min(self.rows, max(1, len(short))),
                                   progress=self.progress, context=self.context)
        for j, payload in zip(order, coded, strict=True):
            streams[short[j]] = _with_crc(np.concatenate([[0], payload]).astype(np.uint8),
                                          self._tag)
        for i in long_:
            pieces = self.pieces(texts[i])
            syms = [self.lm.tokenize(p) for p in pieces]
            pays = encode_chunks(self.lm, syms, rows=min(self.rows, len(pieces)),
                                 progress=self.progress, context=self.context)
            frames = b"".join(pack_frame(len(sy), pay, self._tag_value)
                              for sy, pay in zip(syms, pays, strict=True))
            streams[i] = np.concatenate([[1], _bits(frames)]).astype(np.uint8)
        return streams

    def decode(self, streams: list[np.ndarray | None]) -> list[str | None]:
        """The text of each stream, or None where it is lost (see module)."""
        keys = [None if s is None or not len(s) else np.packbits(s).tobytes() + bytes([len(s) % 8])
                for s in streams]
        todo = {k: s for k, s in zip(keys, streams, strict=True)
                if k is not None and k not in self._cache}
        terminated = {k: s for k, s in todo.items() if s[0] == 0}
        if terminated:
            self._decode_terminated(terminated)
        for k, s in todo.items():
            if s[0] == 1:
                self._cache[k] = self._decode_framed(s[1:])
        return [None if k is None else self._cache[k] for k in keys]

    def _decode_terminated(self, todo: dict[bytes, np.ndarray]) -> None:
        from genjscc.core.source.coding import bits_to_payload, decode_chunks

        crc_ok = {k: s for k, s in todo.items()
                  if len(s) > 1 + CRC_BITS and _crc_ok(s, self._tag)}
        for k in todo.keys() - crc_ok.keys():
            self._cache[k] = None
        if not crc_ok:
            return
        keys = list(crc_ok)
        payloads = [bits_to_payload(crc_ok[k][1:-CRC_BITS]) for k in keys]
        # a model may predict symbols almost for free, so the payload's length does not bound
        # the symbol count: the largest terminated form does (a corrupt payload that passed
        # the CRC stops there at the latest)
        cap = self._max_terminated() + 1
        out = decode_chunks(self.lm, payloads, [cap] * len(payloads),
                            rows=min(self.rows, len(payloads)), progress=self.progress,
                            stop=self.stop, context=self.context)
        for k, symbols in zip(keys, out, strict=True):
            self._cache[k] = None if symbols is None else _utf8(
                self.lm.detokenize(symbols)[:-1])

    def _decode_framed(self, bits: np.ndarray) -> str | None:
        from genjscc.core.source.coding import decode_chunks

        frames = parse_stream(np.packbits(bits).tobytes() if len(bits) % 8 == 0 else b"",
                              self._tag_value)
        if not frames:
            return None
        out = decode_chunks(self.lm, [p for _, p in frames], [n for n, _ in frames],
                            rows=min(self.rows, len(frames)), progress=self.progress,
                            context=self.context)
        if any(o is None for o in out):
            return None
        return _utf8(b"".join(self.lm.detokenize(o) for o in out))


CRC_BITS = 16


_CRC16 = CRC("16")  # one instance: it caches its generator matrices per length


def _crc16(bits: np.ndarray, tag: np.ndarray) -> np.ndarray:
    """CRC-16 of TS 38.212 (polynomial 0x1021) of ``tag`` (not sent) then ``bits``,
    complemented so that an all-zero word does not pass."""
    covered = np.concatenate([tag, bits]).astype(np.uint8)[None]
    return _CRC16.compute(torch.from_numpy(covered))[0].numpy() ^ 1


def _with_crc(bits: np.ndarray, tag: np.ndarray) -> np.ndarray:
    return np.concatenate([bits, _crc16(bits, tag)]).astype(np.uint8)


def _crc_ok(bits: np.ndarray, tag: np.ndarray) -> bool:
    return bool(np.array_equal(_crc16(bits[:-CRC_BITS], tag), bits[-CRC_BITS:]))


def _symbol_bytes(lm, symbol: int) -> bytes:
    """The bytes of one symbol; none for ids that stand for no bytes (padding of a model's
    vocabulary beyond its tokenizer's)."""
    try:
        return lm.detokenize([symbol])
    except ValueError:
        return b""


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ----------------------------------------------------------------------------- channel code


def _bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)) if data else \
        np.zeros(0, dtype=np.uint8)


class SentenceChannelCode:
    """Stream bytes <-> complex symbols with a channel code and a modulation (see module)."""

    def __init__(self, config: SSCCConfig):
        from genjscc.core.mapping import constellation

        if config.modulation not in ("bpsk", "qpsk"):
            raise ValueError(f"modulation {config.modulation!r}: use bpsk or qpsk")
        if config.code.lower() == "5gnr" and not 0 < config.rate < 1:
            raise ValueError(f"rate {config.rate}: 5G NR needs 0 < rate < 1")
        self.config = config
        self.nr = config.code.lower() == "5gnr"
        self.const = constellation(config.modulation)
        self._codes: dict[int, tuple] = {}  # block length k -> (code, decoder)
        self._fixed = None if self.nr else self._code_for(0)

    def _code_for(self, k: int) -> tuple:
        key = 0 if not self.nr else k
        if key not in self._codes:
            from genjscc.core.fec.codes import get_code
            from genjscc.core.fec.decoders import make_decoder

            if self.nr:
                from genjscc.core.fec.ldpc5g import NR5GLDPC

                code = NR5GLDPC(k, code_rate=self.config.rate,
                                modulation_order=self.const.bits_per_symbol)
            else:
                code = get_code(self.config.code)
            # ECCT: words already satisfying every check skip the network (SSCCConfig); BP
            # does the same by its early stop before the first iteration. Chunks of 256 words
            # keep the attention maps in cache: faster than 4096 here, the same bits.
            options = ({"syndrome_exit": True, "batch_size": 256}
                       if self.config.decoder == "ecct" else {})
            self._codes[key] = (code, make_decoder(self.config.decoder, code,
                                                   num_iters=self.config.iterations, **options))
        return self._codes[key]

    def blocks(self, info_bits: int) -> list[int]:
        """Information bits of each code block for a stream of ``info_bits`` bits."""
        if info_bits <= 0:
            raise ValueError("an LM-SSCC stream has at least one bit")
        if not self.nr:
            k = self._fixed[0].k
            return [k] * math.ceil(info_bits / k)
        count = math.ceil(info_bits / NR_MAX_BLOCK_BITS)
        return [math.ceil(info_bits / count)] * count

    def coded_bits(self, info_bits: int) -> int:
        return sum(self._block_n(k) for k in self.blocks(info_bits))

    def _block_n(self, k: int) -> int:
        code = self._code_for(k)[0]
        return code.e if self.nr else code.n

    def channel_uses(self, info_bits: int) -> int:
        """Complex channel uses of a stream of ``info_bits`` bits."""
        return math.ceil(self.coded_bits(info_bits) / self.const.bits_per_symbol)

    def encode(self, stream: np.ndarray) -> torch.Tensor:
        """Complex64 symbols (1-D, unit average energy) of one stream of bits (uint8 0/1)."""
        bits = np.asarray(stream, dtype=np.uint8)
        out = []
        pos = 0
        for k in self.blocks(len(bits)):
            block = np.zeros(k, dtype=np.uint8)
            chunk = bits[pos:pos + k]
            block[:len(chunk)] = chunk
            pos += k
            out.append(self._code_for(k)[0].encode(torch.from_numpy(block)[None])[0])
        coded = torch.cat(out).to(torch.uint8)
        pad = -len(coded) % self.const.bits_per_symbol
        coded = torch.cat([coded, torch.zeros(pad, dtype=torch.uint8)])
        return self.const.map(coded)

    def _llr_noise_var(self, noise_var, info_bits: int):
        """``noise_var``, raised to the floor of ``config.max_llr_ebno_db`` if set."""
        cap = self.config.max_llr_ebno_db
        if cap is None:
            return noise_var
        k = self.blocks(info_bits)[0]
        rate = k / self._block_n(k)
        floor = 10.0 ** (-(cap + 10 * math.log10(rate * self.const.bits_per_symbol)) / 10)
        return torch.clamp(torch.as_tensor(noise_var, dtype=torch.float32), min=floor)

    def block_llrs(self, ys: list[torch.Tensor], noise_vars: list[torch.Tensor | float],
                   info_bits: list[int]) -> dict[int, tuple[list[tuple[int, int]], torch.Tensor]]:
        """The decoder inputs of every code block of the received symbols ``ys`` (noise
        variance ``N0`` per symbol): block length ``k`` -> ((sentence, block) of each row,
        rate-recovered LLRs ``[rows, code n]``, ``ln P(0)/P(1)``, de-rated as configured)."""
        groups: dict[int, list[tuple[int, int, torch.Tensor]]] = {}
        for s, (y, nv, nbits) in enumerate(zip(ys, noise_vars, info_bits, strict=True)):
            llr = self.const.demap(y.to(torch.complex64), self._llr_noise_var(nv, nbits))
            pos = 0
            for b, k in enumerate(self.blocks(nbits)):
                n = self._block_n(k)
                groups.setdefault(k, []).append((s, b, llr[pos:pos + n]))
                pos += n
        return {k: ([(s, b) for s, b, _ in items],
                    self._code_for(k)[0].rate_recover(torch.stack([it[2] for it in items]).float()))
                for k, items in groups.items()}

    def decode(self, ys: list[torch.Tensor], noise_vars: list[torch.Tensor | float],
               info_bits: list[int]) -> list[np.ndarray]:
        """Streams (``info_bits`` bits each, uint8 0/1) from received symbols ``ys`` with noise
        variance ``N0`` per symbol; all codewords of one code are decoded in one batch."""
        decoded: dict[tuple[int, int], np.ndarray] = {}
        for k, (where, llr) in self.block_llrs(ys, noise_vars, info_bits).items():
            code, decoder = self._code_for(k)
            words = decoder(llr)
            info = words[:, torch.as_tensor(np.asarray(code.info_positions))].cpu().numpy()
            for key, row in zip(where, info, strict=True):
                decoded[key] = row.astype(np.uint8)
        streams = []
        for s, nbits in enumerate(info_bits):
            bits = np.concatenate([decoded[(s, b)] for b in range(len(self.blocks(nbits)))])
            streams.append(bits[:nbits])
        return streams
