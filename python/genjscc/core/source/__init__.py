"""Lossless source coding with language models: models, range coding, container format.

* :mod:`.lm` the next-symbol model protocol and the rules that make coding exact.
* :mod:`.small` our byte-level GRU model; :mod:`.hf` and :mod:`.smollm2` transformer models.
* :mod:`.coding` probability quantization and chunked range coding (constriction).
* :mod:`.container` the ``.gjz`` format; :mod:`.codec` ``compress`` / ``decompress``.

See docs/lm-compression.md for the format and the reproducibility guarantee.
"""

from genjscc.core.source.codec import (
    DEFAULT_CHUNK_SIZE,
    DecompressResult,
    compress,
    decompress,
    load_model,
    model_for_container,
)
from genjscc.core.source.coding import PRECISION, quantize_probabilities
from genjscc.core.source.container import ContainerError, ContainerHeader, parse_container
from genjscc.core.source.lm import NextSymbolModel, coding_threads

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "PRECISION",
    "ContainerError",
    "ContainerHeader",
    "DecompressResult",
    "NextSymbolModel",
    "coding_threads",
    "compress",
    "decompress",
    "load_model",
    "model_for_container",
    "parse_container",
    "quantize_probabilities",
]
