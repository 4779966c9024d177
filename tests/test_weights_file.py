"""Every model kind refuses a missing file, a file that is not safetensors and a file of
another kind the same way: ZooError (a GenjsccError and a ValueError) naming the file and
what to use instead, from the kind's own loader and from ``zoo.load``."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from genjscc import zoo
from genjscc.errors import GenjsccError

# loader "module:function" -> the zoo kind whose files it reads
LOADERS = {
    "genjscc.core.ecct.model:load_ecct": "ecct",
    "genjscc.core.jscc.model:load_jscc": "jscc",
    "genjscc.core.text.model:load_text_jscc": "text-jscc",
    "genjscc.core.source.small:load_small_lm": "lm",
    "genjscc.core.source.quantized:load_quantized_lm": "lm",
    "genjscc.core.resilient.model:load_resilient": "resilient",
}
BAD_INPUTS = ("missing", "not_safetensors", "other_kind")


def bad_file(tmp_path: Path, bad: str, kind: str) -> Path:
    """A path that ``kind``'s loaders must refuse: no file, text bytes, or a shipped model of
    another kind (an ECCT file for the JSCC kind, a JSCC file for every other)."""
    if bad == "missing":
        return tmp_path / "missing.safetensors"
    if bad == "not_safetensors":
        path = tmp_path / "text.safetensors"
        path.write_bytes(b"plain text, not a safetensors file" * 4)
        return path
    return zoo.get_model("ecct-polar_n64_k32" if kind == "jscc" else "jscc-r1_12").path


def expect_refusal(call, path: Path, kind: str, bad: str) -> None:
    with pytest.raises(zoo.ZooError) as info:
        call()
    message = str(info.value)
    assert str(path) in message
    assert f"use one of the zoo's {kind} models" in message  # says what to do
    assert {"missing": "does not exist", "not_safetensors": "not a readable safetensors",
            "other_kind": "is not a gr-genjscc"}[bad] in message
    assert isinstance(info.value, GenjsccError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", BAD_INPUTS)
@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_each_loader_refuses_bad_files_with_one_error(tmp_path: Path, loader: str,
                                                      bad: str) -> None:
    module, _, name = loader.partition(":")
    load = getattr(importlib.import_module(module), name)
    path = bad_file(tmp_path, bad, LOADERS[loader])
    expect_refusal(lambda: load(path), path, LOADERS[loader], bad)


@pytest.mark.parametrize("bad", BAD_INPUTS)
@pytest.mark.parametrize("kind", sorted(zoo.KINDS))
def test_zoo_load_refuses_bad_files_with_one_error(tmp_path: Path, kind: str, bad: str) -> None:
    path = bad_file(tmp_path, bad, kind)
    expect_refusal(lambda: zoo.load(path, kind), path, kind, bad)


def test_every_shipped_model_loads_unchanged() -> None:
    """The shipped files keep their bytes (manifest sha256) and load through the new reader."""
    for entry in zoo.list_models():
        assert zoo.sha256_file(entry.path) == entry.sha256, entry.name
        assert zoo.load(entry.name, entry.kind) is not None
