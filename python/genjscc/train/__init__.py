"""Training recipes of the shipped models: one module per target, listed in :data:`TRAINERS`.

Each target module has ``add_arguments(parser)`` and ``run(args)``; the command that lists
them is :mod:`genjscc.commands.train` (``genjscc train TARGET ...``). A new trainer joins by
adding one line to :data:`TRAINERS`. Models are written with :func:`genjscc.zoo.export`.
"""

from __future__ import annotations

import math

from genjscc.errors import GenjsccError

# target -> (module with add_arguments(parser) and run(args), one-line help)
TRAINERS: dict[str, tuple[str, str]] = {
    "lm": ("genjscc.train.lm", "train the small byte-level LM used by `genjscc compress`"),
    "ecct": ("genjscc.train.ecct", "train an ECCT channel decoder for a shipped code"),
    "jscc": ("genjscc.train.jscc", "train a Deep JSCC image model for a bandwidth ratio"),
    "text-jscc": ("genjscc.train.text_jscc", "train the DeepSC-class text JSCC"),
    "resilient": ("genjscc.train.resilient",
                  "train the loss-resilient token image codec (packet-erasure links)"),
}


def parse_range(text: str, option: str, example: str) -> tuple[float, float]:
    """``"2:7"`` -> ``(2.0, 7.0)``: a training range LO:HI in dB given to ``option``.

    Raises:
        GenjsccError: not two numbers, not finite, or LO > HI (the message shows ``example``).
    """
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise GenjsccError(f"{option} {text!r}: write LO:HI in dB, e.g. {example}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise GenjsccError(f"{option} {text!r}: need finite LO <= HI")
    return lo, hi
