"""The one plotting setup: matplotlib's headless backend, imported only when a plot is made."""

from __future__ import annotations

import warnings
from types import ModuleType

__all__ = ["pyplot"]


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the headless Agg backend (plots are written to files; the
    commands run on servers and in CI without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():
        # A Debian matplotlib beside the venv's makes pyplot warn about Axes3D; 2-D plots
        # are unaffected.
        warnings.filterwarnings("ignore", message="Unable to import Axes3D")
        import matplotlib.pyplot as plt
    return plt
