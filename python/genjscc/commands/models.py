"""List the models of the zoo: shipped weights with their sha256, and whether each verifies.

Shipped models live inside the package (zoo/weights/*.safetensors); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json

from genjscc.errors import GenjsccError
from genjscc.zoo import list_models


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = []
    for entry in list_models():
        try:
            entry.verify()
            status = "ok"
        except GenjsccError as error:
            status = f"BROKEN: {error}"
        rows.append({"name": entry.name, "kind": entry.kind, "sha256": entry.sha256,
                     "status": status, "description": entry.description})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no shipped models yet (the zoo manifest is empty)")
        return 0
    print(f"{'name':<24} {'kind':<8} {'sha256':<16} status")
    for row in rows:
        print(f"{row['name']:<24} {row['kind']:<8} {row['sha256'][:16]:<16} {row['status']}")
    return 0
