"""Demo part ``text``: sentences at equal energy per word, LM-SSCC beside the text JSCC.

Sentences of the shipped Areopagitica excerpt (genjscc/data/text, held out from lm-small's and
the text JSCC's training), in DeepSC's form (lowercase letters and spaces, 4-30 words), are
sent by the text JSCC (``deepsc``: text-jscc-small) and two LM-SSCC chains (``lm-sscc-ecct``:
LDPC(49,24), ECCT, BPSK; ``lm-sscc``: 5G NR LDPC rate 1/2, QPSK, BP-50) at every Ew/N0, over
AWGN and Rayleigh block fading (one coefficient per sentence): the library's text-eval engine
(genjscc.core.text.evaluate; docs/text.md). The report plots BLEU-4 and exact recovery against
Ew/N0 and shows example sentences as each scheme received them at three energies.

results.json: ``"text"``: the rows of ``genjscc text-eval --json`` for both channels.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

EW_N0_DB = (8.0, 12.0, 16.0, 20.0, 24.0, 28.0)
SCHEMES = ("deepsc", "lm-sscc-ecct", "lm-sscc")


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--text-ew", default=",".join(f"{x:g}" for x in EW_N0_DB),
                       metavar="LIST", help="Ew/N0 points in dB (default "
                       f"{','.join(f'{x:g}' for x in EW_N0_DB)})")
    group.add_argument("--text-sentences", type=int, default=40, metavar="N",
                       help="sentences of the held-out sample (default 40)")


def _ew_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--text-ew {text!r}: write comma-separated dB values") from None
    if len(values) < 3 or not all(math.isfinite(v) and -10 <= v <= 60 for v in values):
        raise ValueError("--text-ew needs three or more Ew/N0 values between -10 and 60 dB")
    return values


def check_arguments(args: argparse.Namespace) -> None:
    _ew_list(args.text_ew)
    if not 3 <= args.text_sentences <= 200:
        raise ValueError("--text-sentences must be 3 to 200")


def sample_sentences(count: int) -> list[str]:
    """Sentences of the shipped held-out text in DeepSC's form."""
    from importlib import resources

    text = (resources.files("genjscc") / "data" / "text" / "areopagitica-excerpt.txt"
            ).read_text(encoding="utf-8")
    out = []
    for piece in re.split(r"[.;:?!,()]", text):
        words = re.sub(r"[^a-z ]", " ", piece.lower()).split()
        if 4 <= len(words) <= 30:
            out.append(" ".join(words))
    return out[:count]


def run(args: argparse.Namespace, out: Path) -> tuple[list, dict]:
    from genjscc.core.text.evaluate import evaluate_schemes, make_scheme, plot_rows
    from genjscc.core.text.sscc import LMSentenceSource

    texts = sample_sentences(args.text_sentences)
    energies = _ew_list(args.text_ew)
    source = LMSentenceSource("small")
    schemes = [make_scheme(name, source) for name in SCHEMES]
    rows = []
    for channel in ("awgn", "rayleigh"):
        part = evaluate_schemes(texts, schemes, channel, energies, seed=args.seed,
                                keep_texts=True)
        plot_rows(part, str(out / f"text_{channel}.png"),
                  title=f"{len(texts)} held-out sentences, {channel}")
        rows += part
    results = [{k: v for k, v in r.items() if k != "received"} for r in rows]
    uses = schemes[0].model.config.channel_uses_per_token
    return [_section(rows, texts, energies, uses)], {"text": results}


def _section(rows: list[dict], texts: list[str], energies: list[float], uses_per_token: int):
    from genjscc.demo import report

    lines = ["| scheme | channel | Ew/N0 (dB) | Es/N0 (dB) | channel uses / word | BLEU-4 | "
             "exact | lost |", "|---" * 8 + "|"]
    for r in rows:
        lines.append(f"| {r['scheme']} | {r['channel']} | {r['ew_n0_db']:g} | "
                     f"{r['esn0_db']:.1f} | {r['channel_uses_per_word']:.1f} | "
                     f"{r['bleu4']:.3f} | {r['exact']:.2f} | {r['lost']} |")
    picks = [energies[0], energies[len(energies) // 2], energies[-1]]
    examples = ["| Ew/N0 (dB) | scheme | received (AWGN) |", "|---|---|---|"]
    for ew in picks:
        for r in rows:
            if r["channel"] == "awgn" and r["ew_n0_db"] == ew:
                got = r["received"][0]
                examples.append(f"| {ew:g} | {r['scheme']} | "
                                f"{'*(lost)*' if got is None else got or '*(empty)*'} |")
    text = (
        f"{len(texts)} sentences of Milton's *Areopagitica* (held out from every model's "
        "training), lowercase letters only, sent at the same energy per word Ew/N0 by the "
        f"DeepSC-class text JSCC (`deepsc`, analog symbols, {uses_per_token} channel uses per BPE "
        "token) and two "
        "LM-SSCC chains (each sentence range-coded alone by `lm-small`, framed with a CRC-16; "
        "`lm-sscc-ecct`: LDPC(49,24) + ECCT + BPSK; `lm-sscc`: 5G NR LDPC rate 1/2 + QPSK + "
        "BP-50). Each scheme runs its channel at Es/N0 = Ew/N0 x words / channel uses "
        "(docs/text.md); a lost LM-SSCC sentence counts as empty. Rayleigh: one fading "
        "coefficient per sentence, perfect CSI. Reproduce on any file with `genjscc text-eval "
        "--sentences FILE --ew-n0 LIST --channel awgn|rayleigh`.\n\n"
        + "\n".join(lines) + f"\n\nThe first sentence, *{texts[0]}*, as received:\n\n"
        + "\n".join(examples))
    return report.Section(title="Text at equal energy per word: LM-SSCC and the text JSCC",
                          text=text, images=["text_awgn.png", "text_rayleigh.png"])
