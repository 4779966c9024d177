"""Where the training commands find their data: ``--data DIR``, else ``$GENJSCC_DATA/KIND``.

Training data is a developer's input (text corpora, photographs), never shipped and never read
by the product at run time, so there is no built-in path: a command without either gets a clear
error saying what to pass.
"""

from __future__ import annotations

import os
from pathlib import Path

from genjscc.errors import GenjsccError

DATA_ENV = "GENJSCC_DATA"  # a folder holding text/ (genjscc train lm) and images/ (train jscc)


def default_data(kind: str) -> Path | None:
    """``$GENJSCC_DATA/kind`` (e.g. ``text``, ``images``), or None when the variable is unset."""
    root = os.environ.get(DATA_ENV)
    return Path(root) / kind if root else None


def require_data(path: Path | None, kind: str) -> Path:
    """``path``, or a :class:`GenjsccError` telling how to name the ``kind`` folder."""
    if path is None:
        raise GenjsccError(f"no training data: pass --data DIR, or set {DATA_ENV} to a folder "
                           f"with a {kind}/ subfolder")
    return path
