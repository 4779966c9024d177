"""The layers of docs/design.md, checked on the source: no package imports a layer above it.

The scan reads every module's import statements (top level and inside functions, absolute and
relative) with ``ast``, so a lazy import inside a function is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "genjscc"

# layer (folder under python/genjscc) -> modules it must not import (a name and its submodules)
_PRODUCT: dict[str, tuple[str, ...]] = {
    "core": ("genjscc.blocks", "genjscc.serve", "genjscc.commands", "genjscc.train",
             "genjscc.demo", "genjscc.cli", "gnuradio", "pmt"),
    "zoo": ("genjscc.blocks", "genjscc.serve", "genjscc.commands", "genjscc.train",
            "genjscc.demo", "genjscc.cli", "gnuradio", "pmt"),
    "serve": ("genjscc.blocks", "genjscc.commands", "genjscc.train", "genjscc.demo",
              "genjscc.cli", "gnuradio", "pmt"),
    "blocks": ("genjscc.commands", "genjscc.train", "genjscc.demo", "genjscc.cli"),
    "train": ("genjscc.blocks", "genjscc.serve", "genjscc.commands", "genjscc.demo",
              "genjscc.cli", "gnuradio", "pmt"),
    "demo": ("genjscc.commands", "genjscc.train", "genjscc.cli"),
    "commands": ("genjscc.cli",),
}
# no product layer imports the test helpers; they may use any layer below the CLI
FORBIDDEN: dict[str, tuple[str, ...]] = {
    **{layer: (*names, "genjscc.testing") for layer, names in _PRODUCT.items()},
    "testing": ("genjscc.cli", "genjscc.commands"),
}


def module_name(path: Path) -> str:
    """``python/genjscc/core/fec/bp.py`` -> ``genjscc.core.fec.bp`` (a package: its folder)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name that ``source`` (the text of ``module``) imports, relative ones
    resolved; ``from a import b`` yields both ``a`` and ``a.b`` (b may be a submodule)."""
    names: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def violations(layer: str) -> list[str]:
    """``"path: imports name"`` for every forbidden import found in ``layer``'s modules."""
    found = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        imports = imported_modules(path.read_text(encoding="utf-8"), module_name(path),
                                   is_package=path.name == "__init__.py")
        for name in sorted(imports):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer]):
                found.append(f"{path.relative_to(PACKAGE.parent)}: imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(layer: str) -> None:
    assert (PACKAGE / layer).is_dir()
    assert violations(layer) == [], "see docs/design.md, 'What may import what'"


def test_scanner_sees_absolute_relative_and_lazy_imports() -> None:
    source = (
        "import gnuradio.gr\n"
        "from genjscc.serve.client import connect\n"
        "from ...blocks import _pdu\n"
        "def f():\n"
        "    from . import spreading\n"
        "    import pmt\n"
    )
    names = imported_modules(source, "genjscc.core.jscc.model")
    assert {"gnuradio.gr", "genjscc.serve.client", "genjscc.blocks", "genjscc.blocks._pdu",
            "genjscc.core.jscc.spreading", "pmt"} <= names
    package = imported_modules("from .x import y\n", "genjscc.core.fec", is_package=True)
    assert "genjscc.core.fec.x" in package
