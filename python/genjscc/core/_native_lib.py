"""Finding and loading a native kernel of this package (lib/*.c) with ctypes: the search and
version check shared by the BP kernel (:mod:`genjscc.core.fec._native`) and the LM kernel
(:mod:`genjscc.core.source._lm_native`).

Both install routes put the library beside its binding: ``pip install`` / ``make setup`` as
the extension ``<stem><EXTENSION_SUFFIX>`` (setup.py), CMake as ``lib<name>.so``. Loading
never raises: it returns the library or ``None`` with a one-line reason that says how to get
one, so the caller can fall back to its torch code.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
from pathlib import Path

__all__ = ["candidates", "load_kernel"]


def candidates(folder: Path, stem: str, cmake_name: str) -> list[Path]:
    """Where the kernel may be, in order: ``folder/<stem><suffix>`` for every extension
    suffix of this Python, then ``folder/<cmake_name>``."""
    names = [f"{stem}{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    return [folder / name for name in [*names, cmake_name]]


def load_kernel(paths: list[Path], what: str, version_symbol: str, version: int
                ) -> tuple[ctypes.CDLL | None, str]:
    """The first of ``paths`` that exists, loaded, if its ``version_symbol()`` returns
    ``version``; ``what`` names the kernel in reasons (``"BP"``, ``"LM"``).

    Returns:
        ``(library, "loaded PATH")``, or ``(None, why not)``: no file (the paths looked at
        and how to build one), a file that fails to load, or another kernel version.
    """
    tried = []
    for path in paths:
        if not path.is_file():
            tried.append(str(path))
            continue
        try:
            lib = ctypes.CDLL(str(path))
            found = getattr(lib, version_symbol)()
        except (OSError, AttributeError) as exc:
            return None, f"{path} failed to load: {exc}"
        if found != version:
            return None, (f"{path} is kernel version {found}, this package needs {version}: "
                          "rebuild it (make setup, or pip install .)")
        return lib, f"loaded {path}"
    return None, (f"no native {what} kernel found (looked for " + ", ".join(tried) + "); "
                  "build it with `make setup` / `pip install .` (needs a C compiler) or CMake")
