"""Training recipes of the shipped models: one module per target, listed in :data:`TRAINERS`.

Each target module has ``add_arguments(parser)`` and ``run(args)``; the command that lists
them is :mod:`genjscc.commands.train` (``genjscc train TARGET ...``). A new trainer joins by
adding one line to :data:`TRAINERS`. Models are written with :func:`genjscc.zoo.export`.
"""

from __future__ import annotations

# target -> (module with add_arguments(parser) and run(args), one-line help)
TRAINERS: dict[str, tuple[str, str]] = {
    "lm": ("genjscc.train.lm", "train the small byte-level LM used by `genjscc compress`"),
    "ecct": ("genjscc.train.ecct", "train an ECCT channel decoder for a shipped code"),
    "jscc": ("genjscc.train.jscc", "train a Deep JSCC image model for a bandwidth ratio"),
}
