"""Text quality metrics and the energy accounting of text schemes.

Metrics (reference = the sentence that was sent, hypothesis = what the receiver output):

* ``bleu1``, ``bleu4``: corpus BLEU of sacrebleu (default ``13a`` tokenization, brevity penalty
  included) with n-grams up to 1 and up to 4, as a fraction in [0, 1].
* ``exact``: the fraction of sentences received character for character.
* ``cer``: character error rate, the summed Levenshtein distances over the summed reference
  lengths (a lost sentence received as ``""`` costs its whole length).

Energy per word (docs/text.md): a scheme that sends ``n`` complex channel uses of average
energy ``Es`` for a sentence of ``w`` words spends ``Ew = n Es / w``. At the same ``Ew/N0`` every
scheme thus runs its channel at ``Es/N0 = (Ew/N0) * w / n``: in dB
``esn0_db = ew_n0_db - 10 log10(n / w)`` (:func:`esn0_db_for`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["bleu", "cer", "esn0_db_for", "exact_fraction", "levenshtein", "word_count"]


def word_count(text: str) -> int:
    """Words of ``text`` (whitespace-separated)."""
    return len(text.split())


def esn0_db_for(ew_n0_db: float, channel_uses: int, words: int) -> float:
    """Es/N0 per complex channel use (dB) that spends ``ew_n0_db`` per word on a sentence of
    ``words`` words sent in ``channel_uses`` complex channel uses."""
    if channel_uses <= 0 or words <= 0:
        raise ValueError(f"channel_uses ({channel_uses}) and words ({words}) must be > 0")
    return ew_n0_db - 10.0 * math.log10(channel_uses / words)


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions) between ``a`` and ``b``.

    Bit-parallel (Myers 1999, Hyyro's form for the global distance): the column of the
    dynamic-programming table over ``a`` is kept as two bit vectors of +1/-1 vertical steps
    (Python integers, any length), so each character of ``b`` costs a few integer operations
    instead of ``len(a)`` Python steps. Exact; the common prefix and suffix are removed first
    (they never change the distance)."""
    if a == b:
        return 0
    lead = 0
    while lead < min(len(a), len(b)) and a[lead] == b[lead]:
        lead += 1
    a, b = a[lead:], b[lead:]
    tail = 0
    while tail < min(len(a), len(b)) and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    if tail:
        a, b = a[:-tail], b[:-tail]
    if len(a) < len(b):
        a, b = b, a  # the longer string is the bit vector, the loop runs over the shorter
    if not b:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(a):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    mask, high = (1 << len(a)) - 1, 1 << (len(a) - 1)
    pv, mv, dist = mask, 0, len(a)  # column 0 of the table: 0, 1, ..., len(a): all +1 steps
    for ch in b:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | ~(xh | pv)
        mh = pv & xh
        if ph & high:
            dist += 1
        elif mh & high:
            dist -= 1
        ph = (ph << 1) | 1  # row 0 of the table steps by +1 per character of b
        mh <<= 1
        pv = (mh | ~(xv | ph)) & mask
        mv = ph & xv & mask
    return dist


def _levenshtein_table(a: str, b: str) -> int:
    """The textbook O(len(a) len(b)) table: the reference :func:`levenshtein` is tested on."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def cer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Summed edit distance / summed reference length (0 when all references are empty)."""
    _check(references, hypotheses)
    total = sum(len(r) for r in references)
    dist = sum(levenshtein(r, h) for r, h in zip(references, hypotheses, strict=True))
    return dist / total if total else float(dist > 0)


def exact_fraction(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    _check(references, hypotheses)
    return sum(r == h for r, h in zip(references, hypotheses, strict=True)) / len(references)


def bleu(references: Sequence[str], hypotheses: Sequence[str], max_order: int = 4) -> float:
    """Corpus BLEU (sacrebleu) with n-grams up to ``max_order``, in [0, 1]."""
    from sacrebleu.metrics import BLEU

    _check(references, hypotheses)
    metric = BLEU(max_ngram_order=max_order, effective_order=False)
    return metric.corpus_score(list(hypotheses), [list(references)]).score / 100.0


def _check(references: Sequence[str], hypotheses: Sequence[str]) -> None:
    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need as many hypotheses ({len(hypotheses)}) as references "
                         f"({len(references)}), at least one")
