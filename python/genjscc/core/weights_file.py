"""Model files tagged with their kind: safetensors whose metadata holds ``genjscc_kind`` and
the model's configuration as JSON (the Deep JSCC and text JSCC models)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

__all__ = ["read_kind_metadata", "save_with_kind"]


def save_with_kind(model: torch.nn.Module, path: str | Path, kind: str,
                   metadata: dict[str, str] | None = None) -> None:
    """Write ``model``'s state dict with metadata ``genjscc_kind = kind``, ``config`` (its
    dataclass ``model.config`` as JSON) and ``metadata`` (which may add or override keys)."""
    from safetensors.torch import save_file

    meta = {"genjscc_kind": kind, "config": json.dumps(asdict(model.config))}
    meta.update(metadata or {})
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def read_kind_metadata(path: Path, kind: str, label: str) -> dict[str, str]:
    """The metadata of a file :func:`save_with_kind` wrote for ``kind``.

    Raises:
        FileNotFoundError: no such file ("{label} weights ... not found").
        ValueError: not a readable safetensors file, or not one of ``kind`` with a config.
    """
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"{label} weights {path} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except Exception as err:  # safetensors raises its own error type for a corrupt header
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
    if meta.get("genjscc_kind") != kind or "config" not in meta:
        raise ValueError(f"{path} is not a gr-genjscc {label} model (no {kind} metadata)")
    return meta
