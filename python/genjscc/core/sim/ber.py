"""Monte-Carlo bit and block error rates of a code and decoder over AWGN or Rayleigh fading.

One call simulates a whole Eb/N0 sweep::

    code = get_code("LDPC_N49_K24")
    decoder = make_decoder("bp", code, num_iters=50)
    points = simulate_ber(code, decoder, [4, 5, 6], min_errors=100)

Each batch of words goes through the full link, batched on ``device``:
random information bits ``[B, k]`` -> ``code.encode`` (codeword and rate matching) ->
Gray mapping -> channel -> equalization (Rayleigh) -> exact LLR demapping with the per-symbol
noise variance -> ``code.rate_recover`` -> ``decoder`` -> error counting. Information words
are uniformly random (not the all-zero word), so encoder and decoder bugs that only show on
non-zero codewords are caught.

Energy bookkeeping (docs/conventions.md): Eb/N0 is per *information* bit and
``Es/N0 = Eb/N0 + 10 log10(bits_per_symbol * k / e)`` with ``e`` the bits sent per word.
When ``e`` is not a multiple of ``bits_per_symbol`` each word is padded with random bits to a
whole number of symbols; the padding carries no information, so its energy is charged to the
information bits (the rate becomes ``k / (e + pad)``, reported as ``BerPoint.code_rate``).

Channels: ``"awgn"``, complex AWGN ``CN(0, N0)``; ``"rayleigh"``, block fading ``y = h x + w``
with ``h ~ CN(0, 1)`` known at the receiver (perfect CSI), one coefficient per
``fading_block_length`` symbols (``None``: one per codeword; 1: independent per symbol),
zero-forcing equalization and the effective noise variance ``N0 / |h|^2`` in the demapper.

Counting: ``ber`` and ``bler`` are over the ``k`` information bits of each word (a block error
is a word with at least one wrong information bit). ``ber_codeword`` is over all ``n`` bits of
the decoded codeword (for a plain code ``n = e``; for 5G NR the ``n`` columns of H, filler and
punctured bits included). The ECCT papers quote ``-ln(BER)`` over all ``n`` codeword bits of the
all-zero word: that is ``ber_codeword`` (for LDPC(49,24) with BP both measures agree to within
0.1 in ``-ln``).

Stopping rule: a point stops as soon as it has ``min_errors`` *block* errors (so also at least
that many bit errors), or after ``max_words`` words, whichever comes first. Block errors are
the independent events of a coded link (bit errors come in bursts inside failed words), so
they set the confidence of both BER and BLER: 100 block errors give about +-20 % (95 %).
A point with no block error after ``max_words`` words ends the sweep: the following points
(higher Eb/N0, when the list is increasing) are not simulated and not returned.

Reproducibility: point ``i`` draws from its own ``torch.Generator`` seeded with
``seed * 1_000_003 + i`` on ``device``, so a point's result does not depend on the others.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from genjscc.core.channel.awgn import add_awgn
from genjscc.core.channel.fading import RayleighBlockFading, equalize
from genjscc.core.channel.snr import ebno_to_esno_db, noise_var_from_esno_db
from genjscc.core.fec.codes import Code, LinearBlockCode
from genjscc.core.mapping import Constellation

__all__ = ["CHANNELS", "BerPoint", "default_batch_size", "simulate_ber", "uncoded_code"]

CHANNELS = ("awgn", "rayleigh")
# Default batch: about this many coded bits per batch keeps CPU working sets small.
_BITS_PER_BATCH = 1 << 18


@dataclass(frozen=True)
class BerPoint:
    """Result of one Eb/N0 point of :func:`simulate_ber`.

    Attributes:
        ebno_db: Eb/N0 per information bit (dB).
        esno_db: Es/N0 per channel symbol (dB), ``Es = 1``.
        ber: information bit error rate, ``bit_errors / (words * k)``.
        bler: block (word) error rate, ``block_errors / words``.
        neg_ln_ber: ``-ln(ber)`` (``inf`` when no error was seen).
        words: words simulated.
        bit_errors: wrong information bits.
        block_errors: words with at least one wrong information bit.
        ber_codeword: bit error rate over all ``n`` codeword bits (ECCT convention).
        codeword_bit_errors: wrong codeword bits.
        code_rate: ``k / (e + pad)``, the rate used for the Eb/N0 -> Es/N0 conversion.
        seconds: wall time spent on this point.
    """

    ebno_db: float
    esno_db: float
    ber: float
    bler: float
    neg_ln_ber: float
    words: int
    bit_errors: int
    block_errors: int
    ber_codeword: float
    codeword_bit_errors: int
    code_rate: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: an infinite ``neg_ln_ber`` (no error seen) becomes ``None``."""
        d = asdict(self)
        if not math.isfinite(d["neg_ln_ber"]):
            d["neg_ln_ber"] = None
        return d


def default_batch_size(code: Code) -> int:
    """Words per batch when none is given: about 2**18 coded bits, between 16 and 10000."""
    return max(16, min(10_000, _BITS_PER_BATCH // max(code.n, code.e)))


def uncoded_code(n: int = 64) -> LinearBlockCode:
    """The rate-1 "code" of ``n`` free bits (H is one all-zero row), named ``"uncoded_n{n}"``.

    With the ``"none"`` decoder it simulates uncoded transmission: the reference against the
    closed forms of :mod:`genjscc.core.theory`.
    """
    n = _check_int(n, "n", 1)
    return LinearBlockCode(np.zeros((1, n), dtype=np.uint8), name=f"uncoded_n{n}")


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class _Link:
    """Transmitter, channel and receiver of one simulation (everything but the decoder)."""

    def __init__(self, code: Code, modulation: str, channel: str,
                 fading_block_length: int | None, device: torch.device) -> None:
        self.code = code
        self.const = Constellation(modulation)
        bps = self.const.bits_per_symbol
        qm = getattr(code, "modulation_order", None)
        if qm is not None and qm != bps:
            # 5G NR bit interleaving is built for Q_m bits per symbol: a mismatch is a mistake.
            raise ValueError(
                f"code {code.name} is rate-matched for Q_m = {qm} bits per symbol but "
                f"{self.const.name} carries {bps}: build the code with modulation_order={bps} "
                f"(spec field ':qm={bps}')"
            )
        self.pad = (-code.e) % bps
        self.code_rate = code.k / (code.e + self.pad)
        self.channel = channel
        self.fading = RayleighBlockFading(fading_block_length) if channel == "rayleigh" else None
        self.device = device
        self.info_positions = torch.as_tensor(code.info_positions, device=device)
        # Codes with rate matching (5G NR) expose the full codeword, which ber_codeword counts.
        self.split_encoder = hasattr(code, "encode_codeword") and hasattr(code, "rate_match")

    def esno_db(self, ebno_db: float) -> float:
        return float(ebno_to_esno_db(ebno_db, self.const.bits_per_symbol, self.code_rate))

    def run(self, batch: int, noise_var: float, gen: torch.Generator,
            decoder: Callable[[torch.Tensor], torch.Tensor]) -> tuple[int, int, int]:
        """Send ``batch`` random words; return (bit errors, block errors, codeword bit errors)."""
        code, dev = self.code, self.device
        info = torch.randint(0, 2, (batch, code.k), generator=gen, device=dev, dtype=torch.uint8)
        if self.split_encoder:
            codeword = code.encode_codeword(info)
            tx_bits = code.rate_match(codeword)
        else:
            codeword = tx_bits = code.encode(info)
        if self.pad:
            pad = torch.randint(0, 2, (batch, self.pad), generator=gen, device=dev,
                                dtype=tx_bits.dtype)
            tx_bits = torch.cat([tx_bits, pad], dim=-1)
        x = self.const.map(tx_bits.to(torch.uint8))
        if self.fading is None:
            y = add_awgn(x, noise_var, gen)
            llr = self.const.demap(y, noise_var)
        else:
            y, h = self.fading(x, noise_var, gen)
            x_hat, noise_var_eff = equalize(y, h, noise_var)
            llr = self.const.demap(x_hat, noise_var_eff)
        if self.pad:
            llr = llr[..., : code.e]
        bits = decoder(code.rate_recover(llr))
        if not isinstance(bits, torch.Tensor) or tuple(bits.shape) != (batch, code.n):
            shape = tuple(bits.shape) if isinstance(bits, torch.Tensor) else type(bits).__name__
            raise ValueError(f"the decoder must return bits [batch, n={code.n}], got {shape}")
        wrong = bits.to(dev) != codeword.to(bits.dtype).to(dev)
        wrong_info = wrong.index_select(-1, self.info_positions)
        return (int(wrong_info.sum()), int(wrong_info.any(dim=-1).sum()), int(wrong.sum()))


def _progress(enabled: bool | None, total: int, desc: str) -> Any:
    """A tqdm bar on stderr; None (auto) shows it only on a terminal."""
    from tqdm.auto import tqdm

    disable = (not enabled) if enabled is not None else not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="word", file=sys.stderr, disable=disable,
                leave=True, dynamic_ncols=True)


def simulate_ber(
    code: Code,
    decoder: Callable[[torch.Tensor], torch.Tensor],
    ebno_db: Sequence[float],
    modulation: str = "bpsk",
    channel: str = "awgn",
    min_errors: int = 100,
    max_words: int = 100_000,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool | None = None,
    fading_block_length: int | None = None,
) -> list[BerPoint]:
    """Monte-Carlo BER/BLER of ``code`` + ``decoder`` over an Eb/N0 sweep.

    Args:
        code: a code object (:func:`genjscc.core.fec.codes.get_code`): ``k``, ``n``, ``e``,
            ``encode``, ``rate_recover``, ``info_positions``.
        decoder: ``llr [B, n] -> bits [B, n]`` (:func:`genjscc.core.fec.decoders.make_decoder`).
        ebno_db: Eb/N0 values per information bit (dB), simulated in the given order.
        modulation: ``"bpsk"``, ``"qpsk"``, ``"16qam"``, ``"64qam"`` or ``"256qam"``.
        channel: ``"awgn"`` or ``"rayleigh"`` (block fading, perfect CSI).
        min_errors: stop a point after this many block errors (see the module docstring).
        max_words: stop a point after this many words.
        batch_size: words per batch (default :func:`default_batch_size`).
        seed: base seed; point ``i`` uses ``seed * 1_000_003 + i``.
        device: where the link runs (``"cpu"``, ``"cuda"``); the decoder gets LLRs there.
        progress: show a tqdm bar on stderr (None: only when stderr is a terminal).
        fading_block_length: Rayleigh only: symbols per fading coefficient (None: one
            coefficient per codeword).

    Returns:
        One :class:`BerPoint` per simulated Eb/N0; points after a zero-error point are
        skipped (see the module docstring), so the list may be shorter than ``ebno_db``.
    """
    points_db = _check_sweep(ebno_db)
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; use one of {CHANNELS}")
    if fading_block_length is not None:
        if channel != "rayleigh":
            raise ValueError("fading_block_length only applies to channel='rayleigh'")
        _check_int(fading_block_length, "fading_block_length", 1)
    min_errors = _check_int(min_errors, "min_errors", 1)
    max_words = _check_int(max_words, "max_words", 1)
    batch = default_batch_size(code) if batch_size is None else batch_size
    batch = _check_int(batch, "batch_size", 1)
    if not callable(decoder):
        raise TypeError("decoder must be callable: llr [B, n] -> bits [B, n]")
    dev = torch.device(device)
    link = _Link(code, modulation, channel, fading_block_length, dev)

    results: list[BerPoint] = []
    for i, ebno in enumerate(points_db):
        point = _simulate_point(link, decoder, ebno, seed * 1_000_003 + i, min_errors,
                                max_words, batch, progress)
        results.append(point)
        later = points_db[i + 1 :]
        if point.block_errors == 0 and later and all(x > ebno for x in later):
            break  # no error here: the higher Eb/N0 points would see none either
    return results


def _check_sweep(ebno_db: Sequence[float]) -> list[float]:
    if isinstance(ebno_db, int | float):
        ebno_db = [ebno_db]
    try:
        values = [float(v) for v in ebno_db]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ebno_db must be a sequence of numbers, got {ebno_db!r}") from exc
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"ebno_db must be a non-empty list of finite numbers, got {ebno_db!r}")
    return values


def _simulate_point(link: _Link, decoder: Callable, ebno: float, seed: int, min_errors: int,
                    max_words: int, batch: int, progress: bool | None) -> BerPoint:
    esno = link.esno_db(ebno)
    noise_var = float(noise_var_from_esno_db(esno))
    gen = torch.Generator(device=link.device).manual_seed(seed)
    words = bit_err = block_err = cw_err = 0
    start = time.perf_counter()
    with _progress(progress, max_words, f"Eb/N0 {ebno:5.2f} dB") as bar:
        while words < max_words and block_err < min_errors:
            size = min(batch, max_words - words)
            bits, blocks, codeword_bits = link.run(size, noise_var, gen, decoder)
            words += size
            bit_err, block_err, cw_err = bit_err + bits, block_err + blocks, cw_err + codeword_bits
            bar.update(size)
            bar.set_postfix(block_err=block_err, bit_err=bit_err,
                            ber=f"{bit_err / (words * link.code.k):.2e}", refresh=False)
    ber = bit_err / (words * link.code.k)
    return BerPoint(
        ebno_db=float(ebno),
        esno_db=esno,
        ber=ber,
        bler=block_err / words,
        neg_ln_ber=-math.log(ber) if ber > 0 else math.inf,
        words=words,
        bit_errors=bit_err,
        block_errors=block_err,
        ber_codeword=cw_err / (words * link.code.n),
        codeword_bit_errors=cw_err,
        code_rate=link.code_rate,
        seconds=time.perf_counter() - start,
    )
