"""One LM coding configuration in a fresh process, for the cross-kernel exactness checks of
tests/test_lm_exact.py and benchmarks/bench_lm_exact.py.

ATen chooses its CPU kernel set (``ATEN_CPU_CAPABILITY``) once, at start-up, so each kernel
set needs its own process: :func:`run_config` starts ``python -m genjscc.testing.lm_exact
CONFIG`` with the environment of one configuration and returns what the worker printed.

A configuration (JSON) has ``threads``, ``batch``, ``onednn`` (bool), ``input`` (a file) and
optionally ``output`` (write ``input``'s container there, chunks of ``chunk_size`` bytes,
default 512), ``decode`` (containers to decode) and ``expect`` (the bytes they must give,
default ``input``). The worker prints one JSON line: ``capability`` (ATen's kernel set),
``lm_kernel`` (the lm-small step that ran) and ``decoded`` (container -> exact or not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["lm_step_for", "run_config"]


def lm_step_for(config: dict, capability: str) -> str:
    """The lm-small step of a configuration (``GENJSCC_LM_KERNEL``): the torch step (float32
    GEMMs in ATen's kernel set) with one thread, the native kernel with more: its portable C
    code under the ``default`` kernel set, its AVX2 code (where the CPU has it) elsewhere."""
    if config["threads"] == 1:
        return "torch"
    return "portable" if capability == "default" else "auto"


def run_config(config: dict, capability: str, timeout_s: float = 300.0) -> dict:
    """Run one configuration under ATen kernel set ``capability``; the worker's JSON.

    Raises:
        RuntimeError: the worker failed (its stderr's end in the message).
    """
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability,
           "OMP_NUM_THREADS": str(config["threads"]),
           "GENJSCC_LM_KERNEL": lm_step_for(config, capability)}
    done = subprocess.run([sys.executable, "-m", "genjscc.testing.lm_exact", json.dumps(config)],
                          env=env, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"LM worker ({capability}, {config}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    import torch

    from genjscc.core.source import _lm_native, compress, decompress, load_model

    config = json.loads((argv or sys.argv[1:])[0])
    torch.backends.mkldnn.enabled = bool(config["onednn"])
    model = load_model("small")
    out = {"capability": torch.backends.cpu.get_cpu_capability(),
           "lm_kernel": _lm_native.isa() if _lm_native.available() else "torch",
           "decoded": {}}
    data = Path(config["input"]).read_bytes()
    if config.get("output"):
        Path(config["output"]).write_bytes(compress(
            data, model, chunk_size=config.get("chunk_size", 512), batch=config["batch"],
            threads=config["threads"], keep_chunks=True))
    expect = Path(config["expect"]).read_bytes() if config.get("expect") else data
    for name in config.get("decode", []):
        result = decompress(Path(name).read_bytes(), model, threads=config["threads"])
        out["decoded"][name] = result.ok and result.data == expect
    print(json.dumps(out))


if __name__ == "__main__":
    main()
