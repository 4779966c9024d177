"""Restore a file made by `genjscc compress`.

The container names its model; local models (a .safetensors file or a Hugging Face directory)
need --model PATH again. Containers of the shipped lm-small (integer arithmetic) decode on any
machine, CPU or GPU; those of float models (SmolLM2, Hugging Face models) only where the float
arithmetic matches the encoder's, which is checked before decoding. Chunks whose CRC fails are
named on stderr and the exit status is non-zero; the other chunks are still written, and
--placeholder writes each lost chunk as marked filler of its original length so that the rest
keeps its offsets. Use - for stdin or stdout.

Decoding costs one model step per original byte that the container states, whatever its own
size, so a container stating more than --max-output (default 1G) is refused before any
decoding: raise it for a large file you trust.
"""

from __future__ import annotations

import argparse

from genjscc.commands._args import parse_byte_size
from genjscc.commands._io import read_input, with_bar, write_output
from genjscc.errors import GenjsccError

EPILOG = """examples:
  genjscc decompress notes.gjz notes.txt               the container names its model
  genjscc decompress damaged.gjz out.txt --placeholder keep offsets of lost chunks
  genjscc decompress mine.gjz out --model my-lm.safetensors   a local model's container
  genjscc decompress - - < notes.gjz > notes.txt       pipes
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("input", metavar="IN", help="container to read (- for stdin)")
    parser.add_argument("output", metavar="OUT", help="file to write (- for stdout)")
    parser.add_argument("--placeholder", action="store_true",
                        help="write lost chunks as marked filler of their original length")
    parser.add_argument("--model", default=None,
                        help="model path for containers made with a local model")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="default: cpu for integer-model containers, else the device type "
                             "the container was made on")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for an integer-model container (default: the "
                             "container's; float models always use the container's)")
    parser.add_argument("--backend", default="local", metavar="tcp://HOST:PORT",
                        help="compute the probabilities on a genjscc serve inference server "
                             "that serves the container's model")
    parser.add_argument("--max-output", default="1G", metavar="SIZE",
                        help="decoding budget: refuse a container that states more original "
                             "bytes than this (K/M/G suffixes; default 1G)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from genjscc.core.source.codec import decompress, model_for_container
    from genjscc.core.source.container import parse_header

    max_output = parse_byte_size(args.max_output, "--max-output")
    blob = read_input(args.input)
    header, _ = parse_header(blob)
    from genjscc.serve.client import parse_backend

    if args.threads is not None and not 1 <= args.threads <= 256:
        raise GenjsccError(f"--threads must be in [1, 256], got {args.threads}")
    exact = _is_exact(header)
    if parse_backend(args.backend) is not None:
        model = _remote_model(args.backend, header)
    else:
        if args.device is None and exact:
            args.device = "cpu"
        if args.device is None and header.device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise GenjsccError("this container was coded on CUDA and torch sees no GPU "
                                   "here; decode it on a CUDA machine (--device cpu would fail "
                                   "the CRCs)")
        model = model_for_container(blob, args.device or header.device, args.model)
    result = with_bar("decompress", "sym", args.quiet, lambda bar: decompress(
        blob, model, use_placeholder=args.placeholder, progress=bar, threads=args.threads,
        max_output=max_output))
    write_output(args.output, result.data)
    if not result.ok:
        kept = "with placeholders" if args.placeholder else "without them"
        raise GenjsccError(f"{result.summary()}; wrote the recovered chunks {kept}")
    return 0


def _remote_model(backend: str, header):
    """The server's model with the container's weights, on the container's device type."""
    from genjscc.serve.client import connect

    model = connect(backend).lm(header.model_id, expected_sha256=header.model_sha256)
    if model.compute_device != header.device and not _is_exact(header):
        raise GenjsccError(f"this container was coded on {header.device}; the server computes "
                           f"on {model.compute_device}, whose probabilities differ: use a "
                           f"server on {header.device}")
    return model


def _is_exact(header) -> bool:
    """Whether the container's probabilities came from an exact (integer) arithmetic."""
    return bool(header.arithmetic) and not header.arithmetic.startswith("float:")
