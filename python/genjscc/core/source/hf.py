"""Hugging Face causal LMs (SmolLM2 or any local model directory) as next-symbol models.

The coder codes *tokens*; bytes must still round trip exactly for any input, invalid UTF-8
included. :class:`ByteTokenizer` does that with the tokenizer's byte pieces:

* the input is split into valid UTF-8 runs and invalid bytes
  (``bytes.decode("utf-8", "surrogateescape")``);
* valid runs are tokenized normally, then checked: the token pieces, mapped back to bytes,
  must give the run again; if not, the run falls back to one token per byte;
* invalid bytes become the tokenizer's single-byte tokens.

Supported tokenizers: byte-level BPE (GPT-2 style: SmolLM2, Llama 3, Qwen, GPT-2) and
SentencePiece with byte fallback (``<0x00>``..``<0xFF>``; its dummy prefix usually breaks the
check above, so such models code mostly byte by byte: correct but poor).

Stepping uses the model's KV cache, one token per row per step, on both sides (see
:mod:`genjscc.core.source.lm`).
"""

from __future__ import annotations

import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from genjscc.errors import GenjsccError

_INVALID_RUN = re.compile("([\udc80-\udcff]+)")


@lru_cache(maxsize=1)
def _byte_level_alphabet() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable characters."""
    visible = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
               + list(range(ord("®"), ord("ÿ") + 1)))
    chars = visible[:]
    extra = 0
    for byte in range(256):
        if byte not in visible:
            visible.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(visible, chars, strict=True)}


class ByteTokenizer:
    """Exact bytes <-> token ids over a ``tokenizers.Tokenizer`` (a fast tokenizer's backend).

    Special tokens are never parsed from the input (``encode_special_tokens``), so a text
    containing ``<|endoftext|>`` codes as ordinary pieces. That frees a special token to act as
    an escape: bytes without a single-byte token of their own (SmolLM2 lacks 21, e.g. 0x04 and
    0xC0, 0xF5..0xFF) are coded as the escape followed by the single-byte token of the k-th byte
    that has one, k being the missing byte's rank.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True)
        added = backend.get_added_tokens_decoder()
        specials = {tok.content: index for index, tok in added.items() if tok.special}
        alphabet = _byte_level_alphabet()
        if sum(alphabet[b] in vocab for b in range(256)) >= 192:
            self.kind = "byte-level"
            names = [alphabet[b] for b in range(256)]
        elif all(f"<0x{b:02X}>" in vocab for b in range(256)):
            self.kind = "sentencepiece"
            names = [f"<0x{b:02X}>" for b in range(256)]
        else:
            raise GenjsccError("tokenizer has no single-byte tokens (neither byte-level BPE nor "
                               "SentencePiece byte fallback); it cannot code arbitrary bytes")
        self.byte_ids: list[int | None] = [vocab.get(name) for name in names]
        self.missing = [b for b in range(256) if self.byte_ids[b] is None]
        self.escape_id: int | None = None
        if self.missing:
            if not specials or not hasattr(backend, "encode_special_tokens"):
                raise GenjsccError("tokenizer lacks single-byte tokens for bytes "
                                   f"{self.missing[:8]} and has no special token to escape them")
            self.escape_id = specials.get("<|endoftext|>", min(specials.values()))
        if hasattr(backend, "encode_special_tokens"):
            backend.encode_special_tokens = True
        present = [i for i in self.byte_ids if i is not None]
        self._escaped = {b: present[k] for k, b in enumerate(self.missing)}
        self._unescape = {present[k]: b for k, b in enumerate(self.missing)}
        byte_of_char = {c: b for b, c in alphabet.items()}
        pieces: list[bytes] = [b""] * (max(vocab.values()) + 1)
        for token, index in vocab.items():
            pieces[index] = self._piece_bytes(token, token in specials, byte_of_char)
        for b, index in enumerate(self.byte_ids):
            if index is not None:
                pieces[index] = bytes([b])
        self.pieces = pieces

    def _piece_bytes(self, token: str, is_special: bool, byte_of_char: dict[str, int]) -> bytes:
        if is_special:
            return token.encode("utf-8")
        if self.kind == "byte-level":
            if all(c in byte_of_char for c in token):
                return bytes(byte_of_char[c] for c in token)
            return token.encode("utf-8")
        return token.replace("\u2581", " ").encode("utf-8")

    def _bytewise(self, raw: bytes) -> list[int]:
        ids: list[int] = []
        for b in raw:
            index = self.byte_ids[b]
            if index is None:
                ids.extend((self.escape_id, self._escaped[b]))
            else:
                ids.append(index)
        return ids

    def encode(self, data: bytes) -> list[int]:
        """Token ids of ``data``; :meth:`decode` gives ``data`` back exactly."""
        ids: list[int] = []
        for segment in _INVALID_RUN.split(data.decode("utf-8", "surrogateescape")):
            if not segment:
                continue
            if "\udc80" <= segment[0] <= "\udcff":
                ids.extend(self._bytewise(bytes(ord(c) - 0xDC00 for c in segment)))
                continue
            raw = segment.encode("utf-8")
            piece_ids = self.backend.encode(segment, add_special_tokens=False).ids
            if self.escape_id not in piece_ids and \
                    b"".join(self.pieces[i] for i in piece_ids) == raw:
                ids.extend(piece_ids)
            else:  # the tokenizer normalizes, drops or adds something: stay exact, bytewise
                ids.extend(self._bytewise(raw))
        return ids

    def decode(self, ids: list[int]) -> bytes:
        """Bytes of token ids; ValueError for an id outside the vocabulary or a bad escape."""
        if ids and min(ids) < 0:
            raise ValueError("token ids are not a valid coding of bytes (negative id)")
        try:
            if self.escape_id is None or self.escape_id not in ids:
                return b"".join(self.pieces[i] for i in ids)
            out = bytearray()
            it = iter(ids)
            for index in it:
                if index == self.escape_id:
                    out.append(self._unescape[next(it)])
                else:
                    out += self.pieces[index]
            return bytes(out)
        except (IndexError, TypeError, KeyError, StopIteration) as error:
            raise ValueError("token ids are not a valid coding of bytes") from error


class HFCoderModel:
    """:class:`~genjscc.core.source.lm.NextSymbolModel` over a transformers causal LM.

    Args:
        model: a transformers causal LM (float32 recommended), already on ``device``.
        tokenizer: a fast tokenizer of the same model.
        model_id: identifier stored in containers.
        weights_sha256: hex sha256 identifying weights and tokenizer.
    """

    def __init__(self, model: Any, tokenizer: Any, model_id: str, weights_sha256: str) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.model_id = model_id
        self.weights_sha256 = weights_sha256
        self.tokens = ByteTokenizer(tokenizer.backend_tokenizer)
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        if len(self.tokens.pieces) > self.vocab_size:
            raise GenjsccError(f"{model_id}: tokenizer ({len(self.tokens.pieces)} ids) is larger "
                               f"than the model's output ({self.vocab_size})")
        # Condition the first token on the document separator, as in pre-training.
        vocab = tokenizer.backend_tokenizer.get_vocab(with_added_tokens=True)
        candidates = [vocab.get("<|endoftext|>"), tokenizer.eos_token_id,
                      tokenizer.bos_token_id, 0]
        self.bos_id = int(next(c for c in candidates if c is not None))
        positions = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_symbols = int(positions) - 1
        self.default_batch = 16  # KV cache: 16 x 2048-byte chunks of SmolLM2 is about 1.5 GB

    def start_state(self, batch: int) -> Any:
        from transformers import DynamicCache

        return DynamicCache(config=self.model.config)

    def step(self, state: Any, tokens: torch.Tensor) -> tuple[Any, torch.Tensor]:
        out = self.model(input_ids=tokens.to(self.device)[:, None], past_key_values=state,
                         use_cache=True)
        probs = torch.softmax(out.logits[:, -1, :].float(), dim=-1)
        return out.past_key_values, probs.cpu()

    def tokenize(self, data: bytes) -> list[int]:
        return self.tokens.encode(data)

    def detokenize(self, symbols: list[int]) -> bytes:
        return self.tokens.decode(symbols)


def _quiet_offline_transformers() -> Any:
    """Import transformers with the hub offline: nothing is ever downloaded at run time."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import transformers
    except ImportError as error:
        raise GenjsccError("LM coding with transformer models needs transformers, tokenizers "
                           "and accelerate: run `make setup`") from error
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()  # ours is the coding progress bar
    return transformers


def directory_sha256(path: Path) -> str:
    """sha256 over the weights and tokenizer files of a model directory (names and contents)."""
    from genjscc.zoo import sha256_file

    names = sorted(p.name for p in path.iterdir() if p.is_file() and (
        p.suffix in (".safetensors", ".bin", ".gguf") or p.name.startswith("tokenizer")))
    if not any(n.endswith((".safetensors", ".bin", ".gguf")) for n in names):
        raise GenjsccError(f"{path} holds no model weights (*.safetensors or *.bin)")
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name} {sha256_file(path / name)}\n".encode())
    return digest.hexdigest()


def load_hf_directory(path: str | Path, device: torch.device | str = "cpu",
                      model_id: str | None = None, weights_sha256: str | None = None
                      ) -> HFCoderModel:
    """Load a local Hugging Face causal-LM directory (weights, config, tokenizer) in float32."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise GenjsccError(f"{path} is not a Hugging Face model directory (no config.json)")
    transformers = _quiet_offline_transformers()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, dtype=torch.float32)
    except Exception as error:
        raise GenjsccError(f"cannot load the model in {path}: {error}") from error
    if not getattr(tokenizer, "is_fast", False):
        raise GenjsccError(f"{path}: only fast (tokenizers) tokenizers are supported")
    model = model.to(device)
    return HFCoderModel(model, tokenizer, model_id or f"hf:{path.name}",
                        weights_sha256 or directory_sha256(path))
