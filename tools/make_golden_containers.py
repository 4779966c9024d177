"""Write the golden containers of tests/data (run once per container format or lm-small).

    .venv/bin/python tools/make_golden_containers.py

``golden-text``: the first 8 KiB of this repository's docs/conventions.md and README.md as
they were when the files were made (the text is kept beside its container), coded by lm-small
in 2048-byte chunks;
``golden-mixed``: text, repetitive binary records and random bytes in 512-byte chunks kept as
chunks (methods model, xz or zstd, and stored side by side). tests/test_lm_exact.py decodes
both on whatever machine runs the tests and checks every byte: containers made on one CPU
must decode on any other.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from genjscc.core.source import compress, load_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"


def mixed_bytes() -> bytes:
    text = (ROOT / "README.md").read_bytes()[:3000]
    records = b"".join(struct.pack("<IHhf", i, i % 7, -i, i / 3.0) for i in range(400))
    noise = np.random.default_rng(2026).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    return text + records + noise + text[:700]


def main() -> None:
    model = load_model("small")
    text = ((ROOT / "docs" / "conventions.md").read_bytes()
            + (ROOT / "README.md").read_bytes())[:8192]
    (DATA / "golden-text.txt").write_bytes(text)
    (DATA / "golden-text.gjz").write_bytes(compress(text, model, keep_chunks=True))
    mixed = mixed_bytes()
    (DATA / "golden-mixed.bin").write_bytes(mixed)
    (DATA / "golden-mixed.gjz").write_bytes(compress(mixed, model, chunk_size=512,
                                                     keep_chunks=True))


if __name__ == "__main__":
    main()
