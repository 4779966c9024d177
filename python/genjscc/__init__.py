"""gr-genjscc: learned source-channel coding for GNU Radio.

Layers (imports only point down)::

    genjscc.cli, examples, benchmarks    what users run
    genjscc.blocks, genjscc.serve        GNU Radio blocks / ZeroMQ inference server
    genjscc.core                         the science: torch and numpy, never gnuradio
    genjscc.zoo                          shipped weights and their manifest

``import genjscc`` stays light: it does not import torch or GNU Radio.
"""

from genjscc._version import __version__

__all__ = ["__version__"]
