"""Model weights files: safetensors whose metadata holds a format tag and the model's
configuration as JSON. The one way every model kind (ECCT, Deep JSCC, text JSCC, byte-level
LM, resilient codec) writes its weights and checks a file before loading it.

Each kind describes its files with a :class:`WeightsFormat` (the tag it writes, the tags it
reads, the metadata key of its configuration); the tags and keys are those the shipped files
already carry, so they load unchanged (same bytes, same sha256).

A missing file, a file that is not safetensors and a file of another kind raise
:class:`genjscc.zoo.ZooError` (a ``GenjsccError`` and a ``ValueError``) whose message says
what to use instead, for every kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from genjscc.zoo import ZooError, use_instead

__all__ = ["WeightsFormat", "is_format", "read_metadata", "read_weights", "save_weights",
           "state_tensors"]


@dataclass(frozen=True)
class WeightsFormat:
    """How the weights files of one model kind are tagged.

    ``kind`` is the zoo kind (a key of :data:`genjscc.zoo.KINDS`) that loads such files: error
    messages name what that kind accepts. ``label`` is the model's name in messages.
    ``tags`` maps a metadata key to the values a file may carry there; the first value of each
    is what :func:`save_weights` writes, later ones are older formats still read.
    ``config_key`` is the metadata key of the configuration JSON.
    """

    kind: str
    label: str
    tags: Mapping[str, tuple[str, ...]]
    config_key: str = "config"

    def remedy(self) -> str:
        """What to pass instead of a bad file (for error messages)."""
        return use_instead(self.kind)


def state_tensors(model: torch.nn.Module, dtype: torch.dtype | None = None
                  ) -> dict[str, torch.Tensor]:
    """``model``'s state dict as contiguous CPU tensors (cast to ``dtype`` if given)."""
    return {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}


def save_weights(tensors: dict[str, torch.Tensor], path: str | Path, fmt: WeightsFormat,
                 config: Any, metadata: Mapping[str, Any] | None = None) -> None:
    """Write ``tensors`` with metadata: ``fmt``'s tags, ``fmt.config_key`` = the dataclass
    ``config`` as JSON, then ``metadata`` (values as strings; may add or override keys)."""
    from safetensors.torch import save_file

    meta = {key: values[0] for key, values in fmt.tags.items()}
    meta[fmt.config_key] = json.dumps(asdict(config))
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    save_file(tensors, str(path), metadata=meta)


def read_metadata(path: str | Path, fmt: WeightsFormat) -> dict[str, str]:
    """The metadata of a file :func:`save_weights` wrote in ``fmt`` (any value it reads).

    Raises:
        ZooError: no such file, not a readable safetensors file (a truncated file included),
            or a file of another kind or without a configuration.
    """
    meta = _raw_metadata(path, fmt)
    for key, values in fmt.tags.items():
        if meta.get(key) not in values:
            raise ZooError(f"{path} is not a gr-genjscc {fmt.label} model ({key} "
                           f"{meta.get(key)!r}, expected {values[0]!r}): {fmt.remedy()}")
    if fmt.config_key not in meta:
        raise ZooError(f"{path} is not a gr-genjscc {fmt.label} model (no configuration "
                       f"{fmt.config_key!r} in its metadata): {fmt.remedy()}")
    return meta


def read_weights(path: str | Path, fmt: WeightsFormat
                 ) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """(metadata, tensors on the CPU) of a file in ``fmt``; errors as :func:`read_metadata`."""
    from safetensors.torch import load_file

    meta = read_metadata(path, fmt)
    try:
        tensors = load_file(str(path))
    except Exception as err:  # a header that reads but data that does not
        raise ZooError(f"{path}: cannot read its tensors ({err}): {fmt.remedy()}") from None
    return meta, tensors


def is_format(path: str | Path, fmt: WeightsFormat) -> bool:
    """Whether ``path`` is a readable safetensors file whose first tag is one of ``fmt``'s
    (no error for any other file): the loader of ``fmt`` then checks the rest."""
    key, values = next(iter(fmt.tags.items()))
    try:
        return _raw_metadata(path, fmt).get(key) in values
    except ZooError:
        return False


def _raw_metadata(path: str | Path, fmt: WeightsFormat) -> dict[str, str]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ZooError(f"{fmt.label} weights file {path} does not exist: {fmt.remedy()}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except Exception as err:  # safetensors raises its own error type for a corrupt header
        raise ZooError(f"{path} is not a readable safetensors file ({err}): "
                       f"{fmt.remedy()}") from None
