"""GNU Radio namespace entry: ``from gnuradio import genjscc`` gives the gr-genjscc blocks.

GNU Radio's own ``gnuradio/__init__.py`` extends its package path, so this folder is found
wherever it is installed (a venv's site-packages, a CMake prefix, or the source tree).
"""

from genjscc import __version__  # noqa: F401
from genjscc.blocks import *  # noqa: F403
