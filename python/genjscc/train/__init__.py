"""``genjscc train TARGET ...``: the recipes that produced the shipped weights.

Each target is a module with ``add_arguments(parser)`` and ``run(args)``, listed in
:data:`TRAINERS`; a new trainer (ecct, jscc, ...) joins by adding one line there.
"""

from __future__ import annotations

import argparse
import importlib

# target -> (module with add_arguments(parser) and run(args), one-line help)
TRAINERS: dict[str, tuple[str, str]] = {
    "lm": ("genjscc.train.lm", "train the small byte-level LM used by `genjscc compress`"),
    "ecct": ("genjscc.train.ecct", "train an ECCT channel decoder for a shipped code"),
    "jscc": ("genjscc.train.jscc", "train a Deep JSCC image model for a bandwidth ratio"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="target", metavar="TARGET", required=True)
    for name, (module_name, help_text) in TRAINERS.items():
        module = importlib.import_module(module_name)
        target = sub.add_parser(name, help=help_text,
                                description=(module.__doc__ or help_text).strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(target)
        target.set_defaults(_train=module.run)


def run(args: argparse.Namespace) -> int:
    return int(args._train(args) or 0)
