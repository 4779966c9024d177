"""The ``genjscc`` command line: one entry point, one subcommand per job.

Each subcommand lives in its own module and is imported only when it runs, so that
``genjscc --help`` stays fast and a missing optional dependency only breaks its own command.
User errors (``GenjsccError``, ``ValueError``, ``FileNotFoundError``) print one line and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from genjscc import __version__
from genjscc.errors import GenjsccError

# name -> (module implementing add_arguments(parser) and run(args), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("genjscc.commands.demo",
             "run the end-to-end loopback demo and write a report with plots"),
    "models": ("genjscc.commands.models", "list shipped and available models with sha256"),
    "ber": ("genjscc.commands.ber", "Monte-Carlo BER/BLER of a channel code and decoder"),
    "amc": ("genjscc.commands.amc", "link adaptation: MCS tables, SNR thresholds, MCS choice"),
    "compress": ("genjscc.commands.compress", "LM lossless compression of any file"),
    "decompress": ("genjscc.commands.decompress", "restore a file made by genjscc compress"),
    "serve": ("genjscc.commands.serve",
              "ZeroMQ inference server (ECCT, BP, LM) with batching, for a GPU host"),
    "train": ("genjscc.commands.train",
              "training recipes of the shipped models (genjscc train lm ...)"),
    "radio": ("genjscc.commands.radio",
              "files over the burst OFDM PHY: send, channel emulator, receive (ZeroMQ or USRP)"),
    "jscc-eval": ("genjscc.commands.jscc_eval",
                  "image transmission quality vs SNR: Deep JSCC beside the separation baseline"),
    "text-eval": ("genjscc.commands.text_eval",
                  "text at equal energy per word: LM-SSCC chains beside the DeepSC-class JSCC"),
    "loss-eval": ("genjscc.commands.loss_eval",
                  "images over packet loss: resilient token codec beside HEIF + erasure-code FEC"),
}

EPILOG = """\
examples:
  genjscc demo --out report/          every part: QAM/OFDM links, LDPC, AMC, LM-SSCC, JSCC
  genjscc models                      what the model zoo holds
  genjscc ber --code LDPC_N49_K24 --decoder bp --ebno 4,5,6
                                      BER/BLER of a code and decoder vs Eb/N0
  genjscc amc select --snr 12.3 --margin 1    MCS (TS 38.214) for an SNR estimate
  genjscc compress notes.txt notes.gjz    lossless LM compression (--model small|smollm2|PATH)
  genjscc decompress notes.gjz notes.txt  and back; lost chunks are named
  genjscc serve --models ecct-polar_n64_k32,lm-small   inference server on 127.0.0.1:5555
  genjscc train lm --data DIR --minutes 60    retrain the small LM (resumable)
  genjscc train ecct --code POLAR_N64_K32 --layers 6 --epochs 16    train an ECCT decoder
  genjscc jscc-eval --images DIR --snr 0,5,10 --grid grid.png
                                      Deep JSCC vs codec + LDPC + QAM, PSNR/MS-SSIM vs SNR
  genjscc radio channel --from tcp://127.0.0.1:5600 --to tcp://127.0.0.1:5601 --snr 5
                                      virtual radio: see `genjscc radio --help`
  genjscc train jscc --data DIR --ratio 1/6 --minutes 60    train a Deep JSCC model

Run `genjscc COMMAND --help` for the options of a command.
SNR conventions (Es/N0, Eb/N0 per information bit) are in docs/conventions.md.
"""


def build_parser() -> argparse.ArgumentParser:
    """The full parser; subcommand modules add their own options."""
    parser = argparse.ArgumentParser(
        prog="genjscc",
        description="gr-genjscc: learned source-channel coding for GNU Radio.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"genjscc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(
            name, help=help_text, description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        status = args._run(args)
    except (GenjsccError, ValueError, FileNotFoundError, PermissionError) as error:
        print(f"genjscc {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genjscc {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `genjscc models | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
        return 141
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
