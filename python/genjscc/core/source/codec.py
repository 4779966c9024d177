"""Lossless compression of any bytes with a language model: the library entry points.

>>> model = load_model("small")
>>> blob = compress(b"hello world", model)
>>> decompress(blob, model).data
b'hello world'

``compress`` cuts the input into chunks of ``chunk_size`` bytes, turns each into the model's
symbols, range-codes the chunks independently (``rows`` of them stepped together, see
:mod:`genjscc.core.source.coding`), codes each chunk with xz and zstd too and keeps, per
chunk, the smallest of the four (model, xz, zstd, stored), and writes a container
(:mod:`genjscc.core.source.container`). When the whole input coded by xz or zstd as one piece
is smaller still (binary or already compressed data, where a 2 KiB window loses to a long
one), the container holds that instead: one large chunk per 16 MiB. ``decompress`` checks the
container, refuses another model or another float arithmetic, decodes the chunks that passed
their CRCs, checks each decoded chunk against the CRC of its original bytes, and reports the
chunks it could not recover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

from genjscc.core.source.classic import (
    CLASSIC_METHODS,
    ClassicDecodeError,
    classic_compress,
    classic_decompress,
)
from genjscc.core.source.coding import PRECISION, Progress, decode_chunks, encode_chunks
from genjscc.core.source.container import (
    MAX_CHUNK_SIZE,
    ContainerError,
    ContainerHeader,
    ParsedContainer,
    chunk_count,
    crc32,
    pack_container,
    parse_container,
    placeholder,
)
from genjscc.core.source.lm import NextSymbolModel, arithmetic_of, device_kind
from genjscc.errors import GenjsccError

DEFAULT_CHUNK_SIZE = 2048
DEFAULT_MAX_OUTPUT = 1 << 30
"""Decoding budget of :func:`decompress` (bytes of stated original length). Decoding costs
one model step per stated byte, whatever the container's own size (a crafted header can
state 16 MiB per chunk behind a 4-byte payload), so the stated length is what is bounded."""
SMALL_ALIAS = {"small": "lm-small"}
SMOLLM2_NAMES = ("smollm2", "smollm2-135m")


class DecodingBudgetExceeded(ContainerError):
    """The container states more original bytes than the caller's decoding budget allows
    (refused before any model runs)."""


class ArithmeticMismatch(ContainerError):
    """A float model's container made on another arithmetic than this machine's: it cannot
    be decoded here (refused before decoding)."""


@dataclass
class DecompressResult:
    """What :func:`decompress` recovered.

    Attributes:
        data: the original bytes if ``ok``; otherwise the recovered chunks, with lost chunks
            either left out or replaced by :func:`~genjscc.core.source.container.placeholder`.
        problems: chunk index -> why it was lost.
        n_chunks: chunks in the container.
        header: the container header.
        warnings: damage outside the chunks (bytes appended after the last chunk).
    """

    data: bytes
    problems: dict[int, str] = field(default_factory=dict)
    n_chunks: int = 0
    header: ContainerHeader | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.warnings

    def summary(self) -> str:
        """One line naming the lost chunks (for the CLI)."""
        if not self.problems:
            return "; ".join([f"all {self.n_chunks} chunks recovered", *self.warnings])
        names = ", ".join(f"{i} ({why})" for i, why in sorted(self.problems.items())[:8])
        more = f" and {len(self.problems) - 8} more" if len(self.problems) > 8 else ""
        return "; ".join([f"{len(self.problems)} of {self.n_chunks} chunks lost: {names}{more}",
                          *self.warnings])


def load_model(spec: str, device: torch.device | str = "cpu") -> NextSymbolModel:
    """A next-symbol model by name or path.

    Args:
        spec: ``small`` (or any ``lm`` model of the zoo by name), ``smollm2``, a path to a
            ``.safetensors`` file written by ``genjscc train lm``, or a path to a local
            Hugging Face causal-LM directory.
        device: ``cpu`` or ``cuda``.
    """
    from genjscc.zoo import check_device

    kind = device_kind(check_device(device))
    path = Path(spec).expanduser()
    if path.exists():
        return _load_cached(str(path.resolve()), kind)
    return _load_cached(SMALL_ALIAS.get(spec, spec), kind)


@lru_cache(maxsize=4)
def _load_cached(spec: str, device: str) -> NextSymbolModel:
    from genjscc import zoo

    if Path(spec).is_dir():
        from genjscc.core.source.hf import load_hf_directory

        return load_hf_directory(Path(spec), device=device)
    if spec in SMOLLM2_NAMES:
        from genjscc.core.source.smollm2 import load_smollm2

        return load_smollm2(device)
    return zoo.load(spec, "lm", device)


def load_small_model(ref, device: torch.device) -> NextSymbolModel:
    """The ``lm`` loader of :data:`genjscc.zoo.KINDS`: a byte-level weights file of ``genjscc
    train lm`` named by ``ref``: integer (exact, decodes anywhere) or float (this machine's
    arithmetic)."""
    from genjscc.core.source.quantized import (
        QuantizedCoderModel,
        is_quantized_file,
        load_quantized_lm,
    )
    from genjscc.core.source.small import SmallByteCoderModel, load_small_lm

    if is_quantized_file(ref.path):
        return QuantizedCoderModel(load_quantized_lm(ref.path, device), ref.name, ref.sha256)
    return SmallByteCoderModel(load_small_lm(ref.path, device), ref.name, ref.sha256, device)


def model_for_container(blob: bytes, device: torch.device | str = "cpu",
                        model: str | None = None) -> NextSymbolModel:
    """Load the model a container names (or ``model``, which must have the same weights)."""
    from genjscc.core.source.container import parse_header

    header, _ = parse_header(bytes(blob[:4096]) if len(blob) > 4096 else bytes(blob))
    if model is None:
        if header.model_id.startswith(("file:", "hf:")):
            raise GenjsccError(f"this container was made with the local model "
                               f"{header.model_id!r}: pass its path as the model")
        model = header.model_id
    return load_model(model, device)


def compress(data: bytes, model: NextSymbolModel, chunk_size: int = DEFAULT_CHUNK_SIZE,
             batch: int | None = None, threads: int = 1,
             progress: Progress | None = None, keep_chunks: bool = False) -> bytes:
    """Compress ``data`` into a container.

    Args:
        data: any bytes (empty allowed).
        model: the next-symbol model (see :func:`load_model`).
        chunk_size: bytes per independently coded chunk, in [1, 2**24].
        batch: chunks stepped together in one model call (the container's ``rows`` is
            ``min(batch, number of chunks)``); default ``model.default_batch``.
        threads: torch threads while coding (stored; the decoder uses the same).
        progress: called as ``progress(coded_now, total_symbols)`` after each step.
        keep_chunks: never replace the chunked container by the whole input coded as one
            classic piece (for links that lose packets: a loss then costs only the chunks it
            hits, not the whole input).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    batch = model.default_batch if batch is None else batch
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be an integer in [1, {MAX_CHUNK_SIZE}], "
                         f"got {chunk_size!r}")
    if not isinstance(batch, int) or not 1 <= batch <= 0xFFFF:
        raise ValueError(f"batch must be an integer in [1, 65535], got {batch!r}")
    if not isinstance(threads, int) or not 1 <= threads <= 0xFF:
        raise ValueError(f"threads must be an integer in [1, 255], got {threads!r}")
    pieces = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
    symbols = []
    for index, piece in enumerate(pieces):
        tokens = model.tokenize(piece)
        if model.detokenize(tokens) != piece:  # never code what cannot come back exactly
            raise GenjsccError(f"{model.model_id}: tokenization of chunk {index} does not "
                               "round trip; this model cannot code these bytes")
        symbols.append(tokens)
    rows = max(1, min(batch, len(pieces)))
    payloads = encode_chunks(model, symbols, rows=rows, threads=threads, progress=progress)
    header = ContainerHeader(
        original_length=len(data), chunk_size=chunk_size,
        n_chunks=chunk_count(len(data), chunk_size), rows=rows, threads=threads,
        precision=PRECISION, device=_compute_kind(model), model_id=model.model_id,
        model_sha256=model.weights_sha256,
        torch_version=getattr(model, "torch_version", None) or torch.__version__,
        row_block=getattr(model, "row_block", 1), arithmetic=arithmetic_of(model))
    n_symbols = [len(s) for s in symbols]
    methods = ["model"] * len(pieces)
    for index, piece in enumerate(pieces):
        best = _best_classic(piece)
        if len(best[1]) < len(payloads[index]):
            methods[index], payloads[index], n_symbols[index] = best[0], best[1], 0
    blob = pack_container(header, payloads, n_symbols, [crc32(p) for p in pieces], methods)
    whole = None if keep_chunks else _classic_container(data, header)
    return whole if whole is not None and len(whole) < len(blob) else blob


def _best_classic(piece: bytes) -> tuple[str, bytes]:
    """The smallest of ``piece`` stored, xz-coded and zstd-coded: ``(method, payload)``."""
    best = ("stored", piece)
    for method in CLASSIC_METHODS:
        payload = classic_compress(method, piece)
        if len(payload) < len(best[1]):
            best = (method, payload)
    return best


def _classic_container(data: bytes, header: ContainerHeader) -> bytes | None:
    """The whole input coded by the best classic method in chunks of up to 16 MiB (a long
    window beats 2 KiB chunks on data the model cannot predict), or None for empty input."""
    if not data:
        return None
    size = min(len(data), MAX_CHUNK_SIZE)
    pieces = [data[i:i + size] for i in range(0, len(data), size)]
    best = [_best_classic(piece) for piece in pieces]
    whole = ContainerHeader(**{**header.__dict__, "chunk_size": size, "rows": 1,
                               "n_chunks": len(pieces)})
    return pack_container(whole, [p for _, p in best], [0] * len(pieces),
                          [crc32(p) for p in pieces], [m for m, _ in best])


def decompress(blob: bytes, model: NextSymbolModel, use_placeholder: bool = False,
               progress: Progress | None = None, threads: int | None = None,
               max_output: int | None = DEFAULT_MAX_OUTPUT) -> DecompressResult:
    """Decompress a container; damaged chunks are reported, never silently wrong.

    Args:
        blob: the container bytes.
        model: the model the container names (same weights sha256).
        use_placeholder: write lost chunks as marked filler of their original length
            instead of leaving them out.
        progress: called as ``progress(decoded_now, total_symbols)`` after each step.
        threads: torch threads while decoding the container of an exact model (default:
            the container's); a float model always decodes with the container's count.
        max_output: decoding budget in bytes of original length (None: unbounded). The
            work is one model step per stated byte (checked: at most 2 symbols per byte,
            rows at most the chunk count), so this bounds the time a container can take.

    Raises:
        DecodingBudgetExceeded: the container states more than ``max_output`` bytes.
        ContainerError: not a container, corrupt header, or made with another model.
    """
    parsed = parse_container(blob)
    header = parsed.header
    if max_output is not None and header.original_length > max_output:
        raise DecodingBudgetExceeded(
            f"the container states {header.original_length} bytes of original data, above "
            f"the decoding budget of {max_output} bytes; raise the budget if you trust it")
    _check_model(header, model, any(e is not None and e.method == "model"
                                    for e in parsed.entries))
    model = _with_row_block(model, header.row_block)
    problems = dict(parsed.problems)
    entries = parsed.entries
    coded = [p if e is not None and e.method == "model" else None
             for p, e in zip(parsed.payloads, entries, strict=True)]
    n_symbols = [e.n_symbols if e is not None else 0 for e in entries]
    if threads is None or not getattr(model, "arithmetic", ""):
        threads = header.threads
    decoded = decode_chunks(model, coded, n_symbols, rows=header.rows, threads=threads,
                            progress=progress) if any(p is not None for p in coded) \
        else [None] * len(entries)
    parts = []
    for index, (entry, symbols) in enumerate(zip(entries, decoded, strict=True)):
        if index not in problems:
            plain, problem = _chunk_bytes(index, entry, symbols, model, parsed)
            if problem is None:
                parts.append(plain)
                continue
            problems[index] = problem
        if use_placeholder:
            parts.append(placeholder(index, header.chunk_length(index)))
    warnings = [f"{parsed.trailing_bytes} unexpected bytes after the last chunk"
                ] if parsed.trailing_bytes else []
    return DecompressResult(b"".join(parts), dict(sorted(problems.items())), header.n_chunks,
                            header, warnings)


def _check_model(header: ContainerHeader, model: NextSymbolModel, runs_model: bool) -> None:
    """Refuse, before any decoding, a model or (when a chunk needs the model) an arithmetic
    that cannot decode the container."""
    if header.model_sha256 != model.weights_sha256:
        if header.model_id == model.model_id:  # e.g. lm-small of an older genjscc
            raise ContainerError(
                f"this container was made with other weights of {header.model_id!r} (sha256 "
                f"{header.model_sha256[:12]}...) than the ones here "
                f"({model.weights_sha256[:12]}...): decompress it with the genjscc version "
                "that made it, or pass those weights as the model path")
        raise ContainerError(
            f"this container was made with model {header.model_id!r} (weights sha256 "
            f"{header.model_sha256[:12]}...), not {model.model_id!r} "
            f"({model.weights_sha256[:12]}...); decompress it with model {header.model_id!r}")
    if header.precision != PRECISION:
        raise ContainerError(f"container uses {header.precision}-bit probabilities; this "
                             f"genjscc codes with {PRECISION}")
    here = arithmetic_of(model)
    if runs_model and header.arithmetic and header.arithmetic != here:
        raise ArithmeticMismatch(
            f"this container's probabilities were computed by another arithmetic than this "
            f"machine's: made with {header.arithmetic!r}, here {here!r}; float models decode "
            "only where their arithmetic is the same (decode on a machine like the encoder's)")


def _chunk_bytes(index: int, entry, symbols: list[int] | None, model: NextSymbolModel,
                 parsed: ParsedContainer) -> tuple[bytes, str | None]:
    """The original bytes of a located chunk, or a reason why they cannot be had."""
    payload = parsed.payloads[index]
    if entry.method == "stored":
        plain = payload
    elif entry.method in CLASSIC_METHODS:
        try:
            plain = classic_decompress(entry.method, payload, entry.original_length)
        except ClassicDecodeError as error:
            return b"", str(error)
    else:
        problem = _check_decoded(index, entry, symbols, model, parsed.header)
        return (model.detokenize(symbols), None) if not problem else (b"", problem[index])
    if len(plain) != entry.original_length or crc32(plain) != entry.plain_crc:
        return b"", f"{entry.method} bytes fail their CRC"
    return plain, None


def _with_row_block(model: NextSymbolModel, row_block: int) -> NextSymbolModel:
    """``model`` stepping in the container's row blocks (see SmallByteCoderModel)."""
    if getattr(model, "row_block", 1) == row_block:
        return model
    if not hasattr(model, "with_row_block"):
        raise ContainerError(f"this container was coded in blocks of {row_block} rows, which "
                             f"{model.model_id!r} here cannot step in")
    return model.with_row_block(row_block)


def _compute_kind(model: NextSymbolModel) -> str:
    """Device kind that computes the probabilities: a remote model (genjscc.serve.client)
    keeps its tensors on the CPU here but names the server's device as ``compute_device``
    (and the server's torch as ``torch_version``)."""
    return device_kind(getattr(model, "compute_device", None) or model.device)


def _check_decoded(index: int, entry, symbols: list[int] | None, model: NextSymbolModel,
                   header: ContainerHeader) -> dict[int, str]:
    if symbols is None:
        return {index: "range decoder rejected the payload"}
    try:
        plain = model.detokenize(symbols)
    except ValueError:
        plain = None
    if plain is not None and len(plain) == entry.original_length and \
            crc32(plain) == entry.plain_crc:
        return {}
    hint = ""
    if not header.arithmetic:  # version 2: float arithmetic, not recorded
        hint = (f"; this version-2 container recorded no arithmetic: it was coded on "
                f"{header.device} with torch {header.torch_version} in float arithmetic, which "
                "decodes only on a machine that rounds the same way (same CPU kernels); "
                "re-encode it with this genjscc for a container any machine decodes")
    return {index: f"decoded bytes fail their CRC{hint}"}
