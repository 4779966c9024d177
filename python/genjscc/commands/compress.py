"""Compress any file losslessly with a language model and range coding.

The input is cut into chunks (--chunk bytes) coded independently, --batch of them stepped
together. The output container names the model (with its weights' sha256); decompress it with
`genjscc decompress`. Use - for stdin or stdout. Format: docs/lm-compression.md.
"""

from __future__ import annotations

import argparse
import sys

from genjscc.commands._io import read_input, with_bar, write_output
from genjscc.errors import GenjsccError

EPILOG = """examples:
  genjscc compress notes.txt notes.gjz                 the shipped byte-level model
  genjscc compress notes.txt notes.gjz --model smollm2 SmolLM2-135M (slow on a CPU)
  genjscc compress big.log big.gjz --chunk 4096 -q     larger chunks, no progress bar
  tar c docs/ | genjscc compress - docs.tar.gjz        from stdin
  genjscc decompress notes.gjz notes.txt               and back
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("input", metavar="IN", help="file to compress (- for stdin)")
    parser.add_argument("output", metavar="OUT", help="container to write (- for stdout)")
    parser.add_argument("--model", default="small",
                        help="small (the shipped byte-level model), smollm2 (SmolLM2-135M), a "
                             ".safetensors file from `genjscc train lm`, or a Hugging Face "
                             "model directory (default: %(default)s)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="bytes per independently coded chunk (default 2048)")
    parser.add_argument("--batch", type=int, default=None,
                        help="chunks stepped together per model call (default: 64 for the "
                             "small model, 16 for transformers)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads while coding; decoding uses the same (%(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="decode on the same device type (%(default)s)")
    parser.add_argument("--backend", default="local", metavar="tcp://HOST:PORT",
                        help="compute the probabilities on a genjscc serve inference server "
                             "(same container, bit for bit, as a local run on the server's "
                             "device type)")
    parser.add_argument("--keep-chunks", action="store_true",
                        help="keep the chunks even where xz or zstd over the whole input would "
                             "be smaller (for lossy links: a lost packet then loses only its "
                             "chunks)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from genjscc.core.source.codec import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, compress, load_model

    chunk = DEFAULT_CHUNK_SIZE if args.chunk is None else args.chunk
    if not 1 <= chunk <= MAX_CHUNK_SIZE:  # 0 too: it is not "the default"
        raise GenjsccError(f"--chunk must be in [1, {MAX_CHUNK_SIZE}] bytes, got {chunk}")
    data = read_input(args.input)
    from genjscc.serve.client import connect, parse_backend

    if parse_backend(args.backend) is not None:
        model = connect(args.backend).lm(args.model)
    else:
        model = load_model(args.model, args.device)
    blob = with_bar("compress", "sym", args.quiet, lambda bar: compress(
        data, model, chunk_size=chunk,
        batch=args.batch, threads=args.threads, progress=bar, keep_chunks=args.keep_chunks))
    write_output(args.output, blob)
    if not args.quiet:
        bpb = 8 * len(blob) / len(data) if data else 0.0
        print(f"genjscc compress: {len(data)} -> {len(blob)} bytes ({bpb:.3f} bits/byte, "
              f"model {model.model_id})", file=sys.stderr)
    return 0
