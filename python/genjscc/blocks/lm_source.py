"""lm_source_encoder / lm_source_decoder: LM lossless source coding of PDUs of bytes.

Thin plumbing around :mod:`genjscc.core.source`: every input PDU becomes one ``.gjz``
container (docs/lm-compression.md), cut into chunks that are range-coded independently and
stepped together as one batch; the decoder turns a container back into the bytes. Damage is
never an exception: a container whose header cannot be trusted, or made with another model,
gives an empty PDU with error metadata; a container with damaged chunks gives the chunks that
survived (lost ones left out, or replaced by a marked placeholder of their length), with the
lost chunk ids in the metadata. Both are counted in ``num_corrupt()``.

The model is obtained in one place, :func:`open_lm_model`, from the ``backend`` parameter:
``"local"`` runs torch in the block's process; an inference-server backend (``tcp://...``,
genjscc serve) plugs in there.
"""

from __future__ import annotations

import threading

import numpy as np
import pmt

from genjscc.blocks._meta import (
    KEY_BITS_PER_BYTE,
    KEY_CHUNK_IDS,
    KEY_CHUNK_LENGTHS,
    KEY_COMPRESSED_LENGTH,
    KEY_LM_ERROR,
    KEY_LM_OK,
    KEY_LOST_CHUNKS,
    KEY_MODEL,
    KEY_N_CHUNKS,
    KEY_ORIGINAL_LENGTH,
    KEY_PAYLOAD_LENGTHS,
)
from genjscc.blocks._pdu import PduBlock, make_pdu, parse_pdu
from genjscc.core.source import (
    DEFAULT_CHUNK_SIZE,
    ContainerError,
    ContainerHeader,
    NextSymbolModel,
    compress,
    decompress,
    load_model,
    parse_container,
)
from genjscc.core.source.codec import ArithmeticMismatch, DecodingBudgetExceeded
from genjscc.core.source.container import parse_header
from genjscc.errors import GenjsccError

__all__ = ["ERROR_CODES", "check_backend", "lm_source_decoder", "lm_source_encoder",
           "open_lm_model"]


DEFAULT_PDU_MAX_OUTPUT = 256 << 10  # bytes: a minute at the slowest measured decode speed

# lm_error codes (short PMT symbols; the full reason goes to the block's log)
ERROR_CODES = {
    "not_container": "not a genjscc container (bad magic, too short)",
    "header_corrupt": "the header or chunk table cannot be trusted; nothing is recoverable",
    "wrong_model": "made with other weights than the decoder's model",
    "wrong_arithmetic": "a float model's container from a machine with another arithmetic",
    "model_unavailable": "the container's model cannot be loaded here",
    "too_large": "the container states more original bytes than the block's max_output",
    "chunks_lost": "some chunks are damaged; the others are in the output",
}


def open_lm_model(spec: str, device: str = "cpu", backend: str = "local") -> NextSymbolModel:
    """The next-symbol model of an LM block: the one place the blocks get their model.

    Args:
        spec: ``small``, ``smollm2``, a zoo name, a ``.safetensors`` file or a Hugging Face
            model directory (:func:`genjscc.core.source.load_model`).
        device: ``cpu`` or ``cuda`` (local backend).
        backend: ``"local"`` (torch in this process). A ``tcp://HOST:PORT`` inference-server
            backend is not wired to the LM blocks yet.
    """
    check_backend(backend)
    return load_model(spec, device)


def check_backend(backend: str) -> None:
    """ValueError unless the LM blocks can use ``backend``."""
    if backend not in ("", "local"):
        raise ValueError(f"backend {backend!r}: the LM blocks run locally so far; use "
                         "backend='local'")


def _s32(values: list[int]) -> pmt.pmt_base:
    return pmt.to_pmt(np.asarray(values, dtype=np.int32))


class lm_source_encoder(PduBlock):
    """Compress each PDU of bytes into one LM-coded container.

    Input (``in``): PDU of u8, any bytes (1 or more).

    Output (``out``): PDU of u8, the ``.gjz`` container. Metadata: the input's, plus
    ``lm_model`` (symbol, the model id stored in the container), ``lm_n_chunks`` (long),
    ``lm_chunk_ids`` (s32 vector ``0 .. n-1``), ``lm_chunk_lengths`` (s32 vector, original
    bytes per chunk), ``lm_payload_lengths`` (s32 vector, coded bytes per chunk),
    ``lm_original_length`` and ``lm_compressed_length`` (long, bytes) and
    ``lm_bits_per_byte`` (double, container bits per input byte).

    Parameters: ``model`` (``small``, ``smollm2``, a zoo name, a ``.safetensors`` file or a
    Hugging Face directory); ``chunk_size`` (bytes per independently coded chunk);
    ``batch`` (chunks stepped together per model call, 0 = the model's default);
    ``threads`` (torch threads while coding; stored in the container); ``device``
    (``cpu``/``cuda``); ``backend`` (``"local"``).

    Rejected (logged, counted in ``num_errors()``, dropped): not a u8 PDU, empty.
    """

    def __init__(self, model: str = "small", chunk_size: int = DEFAULT_CHUNK_SIZE,
                 batch: int = 0, threads: int = 1, device: str = "cpu",
                 backend: str = "local"):
        PduBlock.__init__(self, "genjscc_lm_source_encoder")
        if not isinstance(chunk_size, int) or not 1 <= chunk_size <= 1 << 24:
            raise ValueError(f"chunk_size must be an integer in [1, 2**24], got {chunk_size!r}")
        if not isinstance(batch, int) or not 0 <= batch <= 0xFFFF:
            raise ValueError(f"batch must be an integer in [0, 65535], got {batch!r}")
        if not isinstance(threads, int) or not 1 <= threads <= 0xFF:
            raise ValueError(f"threads must be an integer in [1, 255], got {threads!r}")
        self.model = open_lm_model(model, device, backend)
        self.chunk_size, self.batch, self.threads = chunk_size, batch or None, threads
        self._stats_lock = threading.Lock()
        self._bytes_in = self._bytes_out = 0

    def num_bytes_in(self) -> int:
        """Input bytes compressed so far."""
        with self._stats_lock:
            return self._bytes_in

    def num_bytes_out(self) -> int:
        """Container bytes emitted so far."""
        with self._stats_lock:
            return self._bytes_out

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, data = parse_pdu(msg, "u8")
        blob = compress(data.tobytes(), self.model, chunk_size=self.chunk_size,
                        batch=self.batch, threads=self.threads, keep_chunks=True)
        parsed = parse_container(blob)  # the table we just wrote: lengths for the metadata
        n = parsed.header.n_chunks
        with self._stats_lock:
            self._bytes_in += int(data.size)
            self._bytes_out += len(blob)
        fields = (
            (KEY_MODEL, pmt.intern(self.model.model_id)),
            (KEY_N_CHUNKS, pmt.from_long(n)),
            (KEY_CHUNK_IDS, _s32(list(range(n)))),
            (KEY_CHUNK_LENGTHS, _s32([e.original_length for e in parsed.entries])),
            (KEY_PAYLOAD_LENGTHS, _s32([e.payload_length for e in parsed.entries])),
            (KEY_ORIGINAL_LENGTH, pmt.from_long(int(data.size))),
            (KEY_COMPRESSED_LENGTH, pmt.from_long(len(blob))),
            (KEY_BITS_PER_BYTE, pmt.from_double(8.0 * len(blob) / data.size)),
        )
        for key, value in fields:
            meta = pmt.dict_add(meta, key, value)
        return make_pdu(meta, np.frombuffer(blob, dtype=np.uint8))


class lm_source_decoder(PduBlock):
    """Restore the bytes of each container made by ``lm_source_encoder`` (or ``genjscc
    compress``).

    Input (``in``): PDU of u8, a ``.gjz`` container.

    Output (``out``): one PDU of u8 per input. Metadata: the input's, plus ``lm_ok`` (bool,
    every chunk recovered), ``lm_model`` (symbol), ``lm_n_chunks`` (long); when not ok,
    ``lm_error`` (symbol, a code of ``ERROR_CODES``) and, for ``chunks_lost``,
    ``lm_lost_chunks`` (s32 vector of chunk ids). A container that cannot be read at all
    (``not_container``, ``header_corrupt``, ``wrong_model``, ``wrong_arithmetic``,
    ``model_unavailable``, ``too_large``) gives an empty u8 PDU; with lost chunks the data
    holds the chunks that survived, lost ones left out or, with ``placeholder``, replaced by
    ``[genjscc: chunk I lost, N bytes]`` cut to their length. Filter on ``lm_ok`` (e.g.
    ``pdu.pdu_filter``) to keep only intact frames. Every such container is logged and
    counted in ``num_corrupt()``; the flowgraph keeps running.

    Parameters: ``model``: empty to use the model the container names (loaded once and
    kept), or a model spec that must have the container's weights (needed for containers
    made with a local ``.safetensors`` file or HF directory); ``placeholder``; ``device``;
    ``backend`` (``"local"``); ``max_output`` (bytes, default 256 KiB): the decoding budget.
    Decoding costs one model step per original byte the container states (about 5-30 ms per
    KiB on a CPU core), so a larger container is refused as ``too_large`` before any
    decoding: one hostile PDU cannot stall the flowgraph.

    Rejected (logged, counted in ``num_errors()``, dropped): not a u8 PDU, empty.
    """

    def __init__(self, model: str = "", placeholder: bool = False, device: str = "cpu",
                 backend: str = "local", max_output: int = DEFAULT_PDU_MAX_OUTPUT):
        PduBlock.__init__(self, "genjscc_lm_source_decoder")
        if not isinstance(max_output, int) or max_output < 1:
            raise ValueError(f"max_output must be a positive number of bytes, got "
                             f"{max_output!r}")
        self.device, self.backend, self.max_output = device, backend, max_output
        self.placeholder = bool(placeholder)
        check_backend(backend)
        self.model = open_lm_model(model, device, backend) if model else None
        self._stats_lock = threading.Lock()
        self._corrupt = 0
        self._chunks_lost = 0

    def num_corrupt(self) -> int:
        """Containers that were not recovered whole (each one logged and marked)."""
        with self._stats_lock:
            return self._corrupt

    def num_chunks_lost(self) -> int:
        """Chunks lost in all containers so far."""
        with self._stats_lock:
            return self._chunks_lost

    def _model_for(self, header: ContainerHeader) -> NextSymbolModel:
        if self.model is not None:
            return self.model
        if header.model_id.startswith(("file:", "hf:")):
            raise GenjsccError(f"the container was made with the local model "
                               f"{header.model_id!r}: give its path as the block's model")
        return open_lm_model(header.model_id, self.device, self.backend)

    def process(self, msg: pmt.pmt_base) -> pmt.pmt_base:
        meta, data = parse_pdu(msg, "u8")
        blob = data.tobytes()
        try:
            header, _ = parse_header(blob)
        except ContainerError as error:
            code = "not_container" if "not a genjscc container" in str(error) else \
                "header_corrupt"
            return self._failed(meta, code, str(error))
        try:
            model = self._model_for(header)
        except GenjsccError as error:
            return self._failed(meta, "model_unavailable", str(error))
        if model.weights_sha256 != header.model_sha256:
            return self._failed(meta, "wrong_model", f"made with {header.model_id!r} "
                                f"(sha256 {header.model_sha256[:12]}...), the decoder has "
                                f"{model.model_id!r} ({model.weights_sha256[:12]}...)")
        try:
            result = decompress(blob, model, use_placeholder=self.placeholder,
                                max_output=self.max_output)
        except DecodingBudgetExceeded as error:
            return self._failed(meta, "too_large", str(error))
        except ArithmeticMismatch as error:  # a float model's container from another machine
            return self._failed(meta, "wrong_arithmetic", str(error))
        except ContainerError as error:  # e.g. truncated inside the chunk table
            return self._failed(meta, "header_corrupt", str(error))
        meta = pmt.dict_add(meta, KEY_LM_OK, pmt.from_bool(result.ok))
        meta = pmt.dict_add(meta, KEY_MODEL, pmt.intern(result.header.model_id))
        meta = pmt.dict_add(meta, KEY_N_CHUNKS, pmt.from_long(result.n_chunks))
        if not result.ok:
            lost = sorted(result.problems)
            meta = pmt.dict_add(meta, KEY_LM_ERROR, pmt.intern("chunks_lost"))
            meta = pmt.dict_add(meta, KEY_LOST_CHUNKS, _s32(lost))
            with self._stats_lock:
                self._corrupt += 1
                self._chunks_lost += len(lost)
            self.logger.warn(f"container damaged: {result.summary()}")
        return make_pdu(meta, np.frombuffer(result.data, dtype=np.uint8))

    def _failed(self, meta: pmt.pmt_base, code: str, text: str) -> pmt.pmt_base:
        with self._stats_lock:
            self._corrupt += 1
        self.logger.warn(f"container refused ({code}): {text}")
        meta = pmt.dict_add(meta, KEY_LM_OK, pmt.PMT_F)
        meta = pmt.dict_add(meta, KEY_LM_ERROR, pmt.intern(code))
        return make_pdu(meta, np.zeros(0, dtype=np.uint8))
