"""Text schemes over one channel at equal energy per word (docs/text.md).

A scheme sends each sentence in ``n`` complex channel uses of unit average energy; at an energy
per word ``Ew/N0`` the sentence of ``w`` words goes through the channel at
``Es/N0 = Ew/N0 * w / n`` (:func:`genjscc.core.text.metrics.esn0_db_for`), so every scheme
spends exactly ``Ew * w`` on it. The channel is AWGN or Rayleigh block fading with one
coefficient per sentence, perfect receiver CSI, equalized
(:class:`genjscc.core.jscc.channel.JSCCChannel`): the receiver knows the effective noise
variance of each sentence.

:func:`evaluate_schemes` returns one row per scheme and energy with the fields of
``genjscc text-eval --json`` (:data:`ROW_FIELDS`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import torch

from genjscc.core.text.metrics import bleu, cer, esn0_db_for, exact_fraction, word_count

__all__ = [
    "ROW_FIELDS",
    "JSCCScheme",
    "SSCCScheme",
    "TextScheme",
    "evaluate_schemes",
    "make_scheme",
    "unified_snr_db",
]

ROW_FIELDS = ("scheme", "channel", "ew_n0_db", "esn0_db", "channel_uses_per_word",
              "unified_snr_db", "bleu1", "bleu4", "exact", "cer", "lost", "sentences",
              "seconds")
FLOAT_BITS = 32  # a JSCC symbol's real value counted as a float32 in the unified-SNR view


def unified_snr_db(ew_n0_db: float, words: int, info_bits: float) -> float:
    """SNR per information bit, per real dimension (the seed's unified SNR):
    ``Ew/N0 + 10 log10(words / info_bits) + 3.01 dB`` (= Eb/N0 + 3.01 dB: Eb over N0/2)."""
    return ew_n0_db + 10 * math.log10(words / info_bits) + 10 * math.log10(2)


class TextScheme(Protocol):
    name: str

    def prepare(self, texts: Sequence[str]) -> None:
        """Encode ``texts`` once (the transmitter does not depend on the energy)."""

    def channel_uses(self) -> list[int]:
        """Complex channel uses of each prepared text."""

    def info_bits(self) -> list[float]:
        """Information bits of each prepared text for the unified-SNR view."""

    def transmit(self, esn0_db: torch.Tensor, channel: str,
                 generator: torch.Generator) -> list[str | None]:
        """Received texts (None: lost) with sentence ``i`` at Es/N0 ``esn0_db[i]``."""


def _through(channel: str, xs: list[torch.Tensor], esn0_db: torch.Tensor,
             generator: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each 1-D symbol vector through its own channel realization: (received, the receiver's
    Es/N0 in dB after equalization)."""
    from genjscc.core.jscc.channel import JSCCChannel

    width = max(1, max(len(x) for x in xs))
    batch = torch.zeros(len(xs), width, dtype=torch.complex64)
    for i, x in enumerate(xs):
        batch[i, :len(x)] = x
    y, snr_rx = JSCCChannel(channel)(batch, esn0_db, generator)
    return [y[i, :len(x)] for i, x in enumerate(xs)], snr_rx


class SSCCScheme:
    """LM-SSCC (:mod:`genjscc.core.text.sscc`) under a scheme name of its ``PRESETS``."""

    def __init__(self, name: str, source=None):
        from genjscc.core.text.sscc import LMSentenceSource, SentenceChannelCode, scheme_config

        self.name = name
        self.source = source if source is not None else LMSentenceSource()
        self.code = SentenceChannelCode(scheme_config(name))
        self._streams: list[np.ndarray] = []
        self._x: list[torch.Tensor] = []

    def prepare(self, texts: Sequence[str]) -> None:
        self._streams = _cached_streams(self.source, list(texts))
        self._x = [self.code.encode(s) for s in self._streams]

    def channel_uses(self) -> list[int]:
        return [len(x) for x in self._x]

    def info_bits(self) -> list[float]:
        return [float(len(s)) for s in self._streams]

    def transmit(self, esn0_db, channel, generator):
        ys, snr_rx = _through(channel, self._x, esn0_db, generator)
        noise = (10.0 ** (-snr_rx / 10.0)).tolist()
        streams = self.code.decode(ys, noise, [len(s) for s in self._streams])
        return self.source.decode(streams)


def _cached_streams(source, texts: list[str]) -> list[np.ndarray]:
    """The source's streams of ``texts``, coded once per source and text list."""
    key = tuple(texts)
    cache = source.__dict__.setdefault("_stream_cache", {})
    if key not in cache:
        cache.clear()
        cache[key] = source.encode(texts)
    return cache[key]


class JSCCScheme:
    """The text JSCC (:class:`genjscc.core.text.model.TextJSCC`)."""

    def __init__(self, name: str = "deepsc", model: str = "text-jscc-small"):
        from genjscc import zoo

        self.name = name
        self.model = zoo.load(model, "text-jscc")
        self._ids: list[list[int]] = []
        self._texts: list[str] = []
        self._batches: list[tuple[list[int], torch.Tensor, torch.Tensor]] = []
        self._long: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def prepare(self, texts: Sequence[str]) -> None:
        """Tokenize and encode every text once: the symbols do not depend on the energy."""
        from genjscc.core.text.tokenizer import PAD_ID

        m = self.model
        self._texts = list(texts)
        self._ids = [m.tokenizer.encode(t) for t in self._texts]
        short = [i for i, ids in enumerate(self._ids) if len(ids) <= m.config.max_tokens]
        self._batches = []  # (sentence indices, tokens [B, T], symbols [B, 4 T])
        for start in range(0, len(short), 64):
            rows = short[start:start + 64]
            width = max(1, max(len(self._ids[i]) for i in rows))
            tokens = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
            for r, i in enumerate(rows):
                tokens[r, :len(self._ids[i])] = torch.tensor(self._ids[i], dtype=torch.long)
            self._batches.append((rows, tokens, m.encode(tokens)))
        self._long = {i: m.encode_text(self._texts[i])  # longer than one piece
                      for i in sorted(set(range(len(self._texts))) - set(short))}

    def channel_uses(self) -> list[int]:
        return [self.model.channel_uses(t) for t in self._texts]

    def info_bits(self) -> list[float]:
        return [2.0 * FLOAT_BITS * n for n in self.channel_uses()]

    @torch.no_grad()
    def transmit(self, esn0_db, channel, generator):
        from genjscc.core.jscc.channel import JSCCChannel
        from genjscc.core.text.tokenizer import PAD_ID

        m = self.model
        out: list[str | None] = [None] * len(self._texts)
        for rows, tokens, x in self._batches:
            y, snr_rx = JSCCChannel(channel)(x, esn0_db[rows], generator)
            pred = m.decode_logits(y, snr_rx, tokens != PAD_ID).argmax(-1)
            for r, i in enumerate(rows):
                out[i] = m.tokenizer.decode(pred[r, :len(self._ids[i])].tolist())
        for i, x in self._long.items():
            ys, snr_rx = _through(channel, [x], esn0_db[i:i + 1], generator)
            out[i] = m.decode_text(ys[0], float(snr_rx[0]))
        return out


def make_scheme(name: str, source=None, jscc_model: str = "text-jscc-small") -> TextScheme:
    """A scheme by name: ``deepsc`` (the text JSCC, zoo model ``jscc_model``) or an LM-SSCC
    preset (``lm-sscc``, ``lm-sscc-ecct``, ...; :data:`genjscc.core.text.sscc.PRESETS`)."""
    from genjscc.core.text.sscc import PRESETS

    if name == "deepsc":
        return JSCCScheme(name, jscc_model)
    if name in PRESETS:
        return SSCCScheme(name, source)
    raise ValueError(f"unknown text scheme {name!r}; use deepsc or one of {', '.join(PRESETS)}")


def evaluate_schemes(texts: Sequence[str], schemes: Sequence[TextScheme], channel: str,
                     ew_n0_db: Sequence[float], seed: int = 0, per: str = "word",
                     keep_texts: bool = False,
                     on_row: Callable[[dict], None] | None = None) -> list[dict]:
    """One row per scheme and energy (fields :data:`ROW_FIELDS`); a lost sentence is scored
    as ``""``. Raises ValueError for an empty list or a text without words.

    ``per="word"`` (default): the values are Ew/N0 (dB), every sentence at its own Es/N0.
    ``per="channel-use"``: the values are Es/N0 per channel use (dB), the same for every
    sentence of every scheme (the equal-SNR view; a scheme with more channel uses per word
    then spends more energy per word, reported as ``ew_n0_db``). ``keep_texts`` adds the
    received texts to each row (``received``: None for a lost sentence). ``on_row`` is called
    with each row as it is finished (progress reports)."""
    if per not in ("word", "channel-use"):
        raise ValueError(f"per must be 'word' or 'channel-use', got {per!r}")
    texts = list(texts)
    if not texts:
        raise ValueError("no sentences to evaluate")
    words = [word_count(t) for t in texts]
    if min(words) == 0:
        raise ValueError(f"sentence {words.index(0)} has no words: energy per word is "
                         "undefined; drop empty lines")
    rows = []
    for scheme in schemes:
        scheme.prepare(texts)
        uses = scheme.channel_uses()
        total_uses, total_words = sum(uses), sum(words)
        bits = sum(scheme.info_bits())
        for value in ew_n0_db:
            start = time.perf_counter()
            if per == "word":
                ew = float(value)
                esn0 = torch.tensor([esn0_db_for(ew, n, w)
                                     for n, w in zip(uses, words, strict=True)])
            else:  # the same Es/N0 everywhere: the energy per word of the whole set
                ew = float(value) + 10 * math.log10(total_uses / total_words)
                esn0 = torch.full((len(texts),), float(value))
            gen = torch.Generator().manual_seed(seed)
            received = scheme.transmit(esn0, channel, gen)
            hyps = ["" if r is None else r for r in received]
            rows.append({
                "scheme": scheme.name, "channel": channel, "ew_n0_db": round(ew, 3),
                "esn0_db": round(esn0_db_for(ew, total_uses, total_words), 3),
                "channel_uses_per_word": round(total_uses / total_words, 3),
                "unified_snr_db": round(unified_snr_db(ew, total_words, bits), 3),
                "bleu1": round(bleu(texts, hyps, 1), 4), "bleu4": round(bleu(texts, hyps, 4), 4),
                "exact": round(exact_fraction(texts, hyps), 4), "cer": round(cer(texts, hyps), 4),
                "lost": sum(r is None for r in received), "sentences": len(texts),
                "seconds": round(time.perf_counter() - start, 2)})
            if keep_texts:
                rows[-1]["received"] = received
            if on_row is not None:
                on_row(rows[-1])
    return rows


PLOT_AXES = {"ew": ("ew_n0_db", "Ew/N0 per word (dB)"),
             "esn0": ("esn0_db", "Es/N0 per channel use (dB)"),
             "unified": ("unified_snr_db", "unified SNR per information bit (dB)")}


def plot_rows(rows: list[dict], path: str, axis: str = "ew", title: str = "") -> None:
    """BLEU-4 and the exact fraction against ``axis`` (a key of :data:`PLOT_AXES`), one line
    per scheme and channel, written to ``path`` (PNG)."""
    from genjscc.core.plotting import pyplot

    plt = pyplot()
    key, label = PLOT_AXES[axis]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["scheme"], r["channel"]), []).append(r)
    for (scheme, channel), pts in groups.items():
        xs = [p[key] for p in pts]
        for ax, metric in zip(axes, ("bleu4", "exact"), strict=True):
            ax.plot(xs, [p[metric] for p in pts], marker="o", label=f"{scheme} ({channel})")
    for ax, metric in zip(axes, ("BLEU-4", "exact sentences"), strict=True):
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
