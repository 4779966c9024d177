"""``genjscc train TARGET ...``: the recipes that produced the shipped weights.

Every recipe checkpoints as it goes and continues with ``--resume``; at the end (or with
``--export``) it measures the model and writes it with its card (the exact commands, the wall
time and the measured quality): ``ecct`` and ``jscc`` into the zoo unless ``--no-register``,
``lm`` into the zoo with ``--register``. ``lm`` and ``jscc`` read their training
data from ``--data DIR`` or ``$GENJSCC_DATA`` (text/ and images/); ``ecct`` needs none (it
trains on the all-zero codeword over simulated noise). Run ``genjscc train TARGET --help``.

  genjscc train lm --data DIR --minutes 60
  genjscc train ecct --code POLAR_N64_K32 --layers 6 --dim 32 --arch crossmpt --epochs 16
  genjscc train jscc --data DIR --ratio 1/12 --arch hybrid --loss psnr --steps 12000

(For developers: each target is a module with ``add_arguments(parser)`` and ``run(args)``,
listed in ``genjscc.train.TRAINERS``; a new trainer joins by adding one line there.)
"""

from __future__ import annotations

import argparse
import importlib

from genjscc.train import TRAINERS


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
