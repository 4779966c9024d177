"""A DeepSC-class semantic text JSCC: transformer encoder, learned channel encoder, analog
channel symbols, learned channel decoder, transformer decoder.

Shape of the scheme (after Xie et al., "Deep learning enabled semantic communication
systems", IEEE TSP 2021), with two changes said here:

* Tokens are byte-level BPE pieces (:mod:`genjscc.core.text.tokenizer`), not words from a fixed
  vocabulary, so an unseen word is sent as smaller pieces instead of failing or becoming <unk>.
* The channel encoder adds a learned constellation point per token (``2 cu`` reals of energy
  ``cu``) to its context-dependent output (which starts at zero), and the channel decoder adds
  the matched-filter score of every token's point, ``2 <y, c_v> / N0``, to the transformer's
  logits: the scheme decodes from the first training step (a random spherical code), and
  training shapes the constellation and the context's corrections. (Without it, a first run
  on a shared CPU learned the token identities too slowly: BLEU-1 0.05-0.23 after 250-500
  steps.)
* The decoder is not autoregressive: a transformer stack over the received symbols of all
  tokens at once (one position per sent token), then a softmax over the vocabulary per
  position. The receiver knows the number of tokens from the number of symbols it received
  (``channel_uses_per_token`` per token); it is also told the SNR of the link (the effective
  SNR after equalization on fading), as a feature of every position.

Channel symbols: ``channel_uses_per_token`` complex symbols per token, normalized per sentence
to unit average energy per complex channel use (``Es = 1``, docs/conventions.md), so a sentence
of ``T`` tokens spends ``T * channel_uses_per_token`` symbol energies. Sentences longer than
``max_tokens`` are cut into pieces of at most ``max_tokens`` tokens, each sent and normalized
alone (:meth:`TextJSCC.encode_text`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genjscc.core.text.tokenizer import PAD_ID, TextTokenizer
from genjscc.core.weights_file import WeightsFormat, read_weights, save_weights, state_tensors

__all__ = ["TextJSCC", "TextJSCCConfig", "load_text_jscc", "load_text_jscc_model",
           "save_text_jscc"]


@dataclass(frozen=True)
class TextJSCCConfig:
    """Architecture: ``layers`` transformer layers on each side, width ``d_model``;
    ``constellation``: the learned per-token constellation and its matched filter (module)."""

    vocab_size: int = 1024
    d_model: int = 128
    heads: int = 8
    layers: int = 3
    ff: int = 512
    channel_uses_per_token: int = 4
    max_tokens: int = 96
    dropout: float = 0.0
    constellation: bool = True


def _stack(cfg: TextJSCCConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.ff, cfg.dropout,
                                       batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)


class TextJSCC(nn.Module):
    """The network (see module); :meth:`encode` / :meth:`decode` work on token batches,
    :meth:`encode_text` / :meth:`decode_text` on strings (with the tokenizer)."""

    def __init__(self, config: TextJSCCConfig, tokenizer: TextTokenizer | None = None):
        super().__init__()
        if tokenizer is not None and tokenizer.vocab_size != config.vocab_size:
            raise ValueError(f"tokenizer has {tokenizer.vocab_size} ids, config.vocab_size is "
                             f"{config.vocab_size}")
        self.config = config
        self.tokenizer = tokenizer
        d, reals = config.d_model, 2 * config.channel_uses_per_token
        self.embed = nn.Embedding(config.vocab_size, d, padding_idx=PAD_ID)
        self.pos_tx = nn.Embedding(config.max_tokens, d)
        self.pos_rx = nn.Embedding(config.max_tokens, d)
        self.encoder = _stack(config)
        self.enc_norm = nn.LayerNorm(d)
        self.channel_encoder = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(),
                                             nn.Linear(2 * d, reals))
        # received reals + the SNR feature (dB / 10)
        self.channel_decoder = nn.Sequential(nn.Linear(reals + 1, 2 * d), nn.ReLU(),
                                             nn.Linear(2 * d, d))
        self.decoder = _stack(config)
        self.dec_norm = nn.LayerNorm(d)
        self.out_bias = nn.Parameter(torch.zeros(config.vocab_size))
        if config.constellation:
            self.points = nn.Parameter(torch.randn(config.vocab_size, reals))
            # the context's correction starts at zero: the first symbols are the points alone
            nn.init.zeros_(self.channel_encoder[-1].weight)
            nn.init.zeros_(self.channel_encoder[-1].bias)
        # small embeddings: the output layer shares them, and logits of N(0, 1) rows would
        # start the cross-entropy near 40 nats instead of ln(vocab)
        for emb in (self.embed, self.pos_tx, self.pos_rx):
            nn.init.normal_(emb.weight, std=0.02)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ tensors

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """Complex symbols ``[B, T * channel_uses_per_token]`` of token ids ``[B, T]``
        (``PAD_ID`` after a sentence's end; its symbols are zero and carry no energy).

        Each row is scaled so that its non-padding symbols have unit average energy.
        """
        cfg = self.config
        if tokens.dim() != 2 or tokens.shape[1] > cfg.max_tokens:
            raise ValueError(f"tokens must be [B, T] with T <= {cfg.max_tokens}, got "
                             f"{tuple(tokens.shape)}")
        mask = tokens != PAD_ID
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        h = self.embed(tokens) + self.pos_tx(pos)
        h = self.enc_norm(self.encoder(h, src_key_padding_mask=~mask))
        reals = self.channel_encoder(h)
        if cfg.constellation:
            reals = reals + self.constellation_points()[tokens]
        reals = reals * mask[..., None]
        z = torch.view_as_complex(reals.reshape(*reals.shape[:2], -1, 2).contiguous())
        z = z.reshape(z.shape[0], -1)  # [B, T * cu]
        used = mask.sum(1).clamp(min=1) * cfg.channel_uses_per_token
        energy = (z.abs() ** 2).sum(1) / used
        return z / torch.sqrt(energy.clamp(min=1e-12))[:, None]

    def constellation_points(self) -> torch.Tensor:
        """``[vocab, 2 cu]`` real points, each of energy ``cu`` (1 per complex channel use)."""
        cu = self.config.channel_uses_per_token
        return self.points * (cu ** 0.5) / self.points.norm(dim=-1, keepdim=True).clamp(min=1e-6)

    def decode_logits(self, y: torch.Tensor, snr_db: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token logits ``[B, T, vocab]`` from received symbols ``y [B, T * cu]`` at the
        decoder's SNR ``snr_db [B]`` (dB); ``mask [B, T]`` marks the sent tokens."""
        cfg = self.config
        batch = y.shape[0]
        t = y.shape[1] // cfg.channel_uses_per_token
        if y.shape[1] != t * cfg.channel_uses_per_token or t > cfg.max_tokens:
            raise ValueError(f"y has {y.shape[1]} symbols: need a multiple of "
                             f"{cfg.channel_uses_per_token}, at most "
                             f"{cfg.max_tokens * cfg.channel_uses_per_token}")
        reals = torch.view_as_real(y.reshape(batch, t, -1)).reshape(batch, t, -1).float()
        snr = torch.as_tensor(snr_db, dtype=torch.float32, device=y.device).reshape(-1)
        snr = snr.expand(batch) if snr.numel() == 1 else snr
        feat = torch.cat([reals, (snr / 10.0)[:, None, None].expand(batch, t, 1)], -1)
        pos = torch.arange(t, device=y.device)
        h = self.channel_decoder(feat) + self.pos_rx(pos)
        pad = None if mask is None else ~mask
        h = self.dec_norm(self.decoder(h, src_key_padding_mask=pad))
        logits = h @ self.embed.weight.t() + self.out_bias
        if cfg.constellation:  # matched filter: 2 <y, c_v> / N0 (log-likelihood up to a constant)
            n0 = (10.0 ** (-snr / 10.0))[:, None, None]
            logits = logits + 2.0 * (reals @ self.constellation_points().t()) / n0
        return logits

    def forward(self, tokens: torch.Tensor, snr_db: torch.Tensor, channel: Any,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Training pass: logits after ``channel(x, snr_db, generator) -> (y, snr_rx)``."""
        y, snr_rx = channel(self.encode(tokens), snr_db, generator)
        return self.decode_logits(y, snr_rx, tokens != PAD_ID)

    # ------------------------------------------------------------------ text

    def _require_tokenizer(self) -> TextTokenizer:
        if self.tokenizer is None:
            raise ValueError("this TextJSCC has no tokenizer; load it with load_text_jscc")
        return self.tokenizer

    def split_tokens(self, text: str) -> list[list[int]]:
        """Token ids of ``text`` in pieces of at most ``max_tokens`` (``[]`` if empty)."""
        ids = self._require_tokenizer().encode(text)
        m = self.config.max_tokens
        return [ids[i:i + m] for i in range(0, len(ids), m)]

    @torch.no_grad()
    def encode_text(self, text: str) -> torch.Tensor:
        """Complex symbols (1-D) of one text: its pieces' symbols one after another; empty
        for an empty text. The energy is ``len(result)`` (unit energy per channel use)."""
        pieces = self.split_tokens(text)
        device = self.out_bias.device
        if not pieces:
            return torch.zeros(0, dtype=torch.complex64, device=device)
        return torch.cat([self.encode(torch.tensor([p], device=device))[0] for p in pieces])

    @torch.no_grad()
    def decode_text(self, y: torch.Tensor, snr_db: float) -> str:
        """Text from the received symbols of :meth:`encode_text` (1-D complex)."""
        cfg = self.config
        tok = self._require_tokenizer()
        if y.dim() != 1 or y.numel() % cfg.channel_uses_per_token:
            raise ValueError(f"y must be 1-D with a multiple of {cfg.channel_uses_per_token} "
                             f"symbols, got shape {tuple(y.shape)}")
        step = cfg.max_tokens * cfg.channel_uses_per_token
        ids: list[int] = []
        for start in range(0, y.numel(), step):
            piece = y[start:start + step].to(self.out_bias.device)[None]
            ids += self.decode_logits(piece, torch.tensor([float(snr_db)]))[0].argmax(-1).tolist()
        return tok.decode(ids)

    def channel_uses(self, text: str) -> int:
        """Complex channel uses :meth:`encode_text` spends on ``text``."""
        return sum(len(p) for p in self.split_tokens(text)) * self.config.channel_uses_per_token

    def flops_per_token(self) -> int:
        """Multiply-adds x 2 per token, encoder + decoder (attention over ~20 tokens)."""
        cfg = self.config
        d, ff, t = cfg.d_model, cfg.ff, 20
        layer = 4 * d * d + 2 * d * ff + 2 * t * d
        chan = d * 2 * d + 2 * d * 2 * cfg.channel_uses_per_token + \
            (2 * cfg.channel_uses_per_token + 1) * 2 * d + 2 * d * d
        return 2 * (2 * cfg.layers * layer + chan + d * cfg.vocab_size)


WEIGHTS_FORMAT = WeightsFormat("text-jscc", "text JSCC", {"genjscc_kind": ("text-jscc",)})
"""How :func:`save_text_jscc` tags its files."""


def save_text_jscc(model: TextJSCC, path: str | Path, metadata: dict[str, str] | None = None,
                   dtype: torch.dtype | None = None) -> None:
    """Weights (as ``dtype``, e.g. float16 to halve the file; loading casts them back to the
    model's float32), configuration and tokenizer JSON in one safetensors file."""
    save_weights(state_tensors(model, dtype), path, WEIGHTS_FORMAT, model.config,
                 {"tokenizer": model._require_tokenizer().to_json(), **(metadata or {})})


def load_text_jscc(path: str | Path, device: str | torch.device = "cpu") -> TextJSCC:
    """A :class:`TextJSCC` in eval mode (with its tokenizer) from :func:`save_text_jscc`;
    ZooError if there is no such file or it is not one."""
    meta, tensors = read_weights(path, WEIGHTS_FORMAT)
    model = TextJSCC(TextJSCCConfig(**json.loads(meta["config"])),
                     TextTokenizer(meta["tokenizer"]))
    model.load_state_dict(tensors)
    return model.to(device).eval()


def load_text_jscc_model(ref: Any, device: str | torch.device = "cpu") -> TextJSCC:
    """The ``text-jscc`` loader of :data:`genjscc.zoo.KINDS`."""
    return load_text_jscc(ref.path, device)
