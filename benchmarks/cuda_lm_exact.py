"""Device check: integer lm-small containers made on the CPU decode on CUDA, and the reverse.

Run on a machine with a CUDA GPU (the project's tests run without one):

    .venv/bin/python benchmarks/cuda_lm_exact.py [--bytes 20000]

Encodes the same text on the CPU and on CUDA (batch 1 and 64), checks that equal batches give
byte-identical containers on both devices, and decodes every container on both devices.
Prints one JSON line per check and a summary; exit status 0 only if everything is exact.
Record the result in docs/lm-compression.md ("Exactness") with the GPU's name and the date.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from genjscc.core.source import compress, decompress, load_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bytes", type=int, default=20000)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    text = (b"A range decoder reproduces the symbols only from bit-identical tables. " * 400
            )[:args.bytes]
    models = {device: load_model("small", device) for device in ("cpu", "cuda")}
    containers = {(d, b): compress(text, m, batch=b, keep_chunks=True)
                  for d, m in models.items() for b in (1, 64)}
    ok = True
    for batch in (1, 64):
        same = containers[("cpu", batch)] == containers[("cuda", batch)]
        ok &= same
        print(json.dumps({"check": "identical containers", "batch": batch, "ok": same}))
    for (made_on, batch), blob in containers.items():
        for device, model in models.items():
            result = decompress(blob, model)
            exact = result.ok and result.data == text
            ok &= exact
            print(json.dumps({"made_on": made_on, "batch": batch, "decoded_on": device,
                              "exact": exact}))
    print(json.dumps({"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                      "all_exact": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
