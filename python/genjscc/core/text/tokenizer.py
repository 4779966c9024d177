"""A byte-level BPE tokenizer for the text JSCC: it never fails on an unseen word.

Built from training text only (:func:`train_tokenizer`): the 256 byte values are always in the
vocabulary, so any UTF-8 string (an unseen word, another script, an emoji) is encoded as
merges where the training text had them and as single bytes where not. The tokenizer is kept
as the JSON of the ``tokenizers`` library (stored in the model file's metadata).

Token ids ``0..2`` are reserved: ``PAD`` (never sent), ``UNK`` (unused: byte fallback makes it
unreachable; kept so that ids are stable) and ``SEP`` (unused by the model; kept for chains).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["PAD_ID", "SPECIAL_TOKENS", "TextTokenizer", "train_tokenizer"]

SPECIAL_TOKENS = ("<pad>", "<unk>", "<sep>")
PAD_ID = 0


class TextTokenizer:
    """Encode text to token ids and back (byte-level BPE; lossless for any UTF-8 text)."""

    def __init__(self, tokenizer_json: str):
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_str(tokenizer_json)
        except Exception as err:  # tokenizers raises a bare Exception for bad JSON
            raise ValueError(f"tokenizer_json is not a tokenizers JSON: {err}") from None
        if self._tok.token_to_id(SPECIAL_TOKENS[0]) != PAD_ID:
            raise ValueError("tokenizer_json: <pad> must be id 0 (use train_tokenizer)")

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def to_json(self) -> str:
        return self._tok.to_str()

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens); ``[]`` for an empty string."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``; padding and ids outside the vocabulary are skipped."""
        keep = [int(i) for i in ids if 3 <= int(i) < self.vocab_size]
        return self._tok.decode(keep, skip_special_tokens=True).strip()


def train_tokenizer(lines: Iterable[str], vocab_size: int = 4096) -> TextTokenizer:
    """A byte-level BPE of ``vocab_size`` ids (specials and the 256 bytes included) learned
    from ``lines`` (training text only: never the evaluation set)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab_size < 300:
        raise ValueError(f"vocab_size {vocab_size}: need at least 300 (3 specials + 256 bytes)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    return TextTokenizer(tok.to_str())
