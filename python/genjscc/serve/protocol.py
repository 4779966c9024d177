"""The wire format between clients, the broker and workers of ``genjscc serve`` (version 1).

Everything here is documented for other implementations in docs/protocol.md. In short, one
ZeroMQ multipart message is:

* frame 0: a UTF-8 JSON object, the **header** (at most :attr:`Limits.max_header_bytes`);
* frames 1..N: one frame per array, the raw **little-endian**, C-ordered bytes of the arrays
  that ``header["arrays"]`` describes (``{"dtype": "<f4", "shape": [B, 64]}``, in order).

A request header holds ``v`` (protocol version, :data:`VERSION`), ``op`` (operation), ``id``
(request id, echoed in the reply), and as the operation needs ``model``, ``sha256`` (the
weights the client expects; a server with other weights refuses), ``params`` (a JSON object)
and ``timeout_ms`` (how long the client waits; the server drops work that nobody waits for).
A reply header holds ``v``, ``id``, ``ok`` and either ``result`` (a JSON object) plus
``arrays`` or ``error`` (``{"code": ..., "message": ...}``, codes in :data:`ERROR_CODES`).

Nothing is ever unpickled or evaluated: a header is parsed by :func:`json.loads` and checked
field by field, an array is :func:`numpy.frombuffer` of a whitelisted dtype whose byte count
must match its shape exactly. Every size is bounded (:class:`Limits`) before anything is
allocated, so random bytes cost one error reply and nothing else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genjscc.errors import GenjsccError

VERSION = 1
"""Protocol version carried in every header as ``"v"``; a server refuses other versions."""

WORKER_MAGIC = b"GJW1"
"""First frame of every broker <-> worker message (never seen by clients)."""

# dtype strings on the wire (numpy's, with explicit byte order) -> numpy dtype
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name)
    for name in ("|b1", "|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8", "<f2", "<f4",
                 "<f8", "<c8", "<c16")
}

ERROR_CODES = {
    "bad_request": "the message is malformed (not JSON, wrong fields, sizes that do not match)",
    "unsupported_version": "the header's protocol version is not one this server speaks",
    "too_large": "a frame, the header, an array or the message exceeds the server's limits",
    "unknown_op": "no such operation (for this model)",
    "unknown_model": "the server does not serve this model",
    "weights_mismatch": "the server's weights sha256 differs from the one the client expects",
    "invalid_input": "the arrays or params do not suit the model (shape, dtype, values)",
    "unknown_session": "no such LM session (expired, closed, or its worker restarted)",
    "out_of_order": "an LM step arrived out of sequence for its session",
    "busy": "the server's queue is full; retry later",
    "expired": "the request waited longer than its timeout_ms and was dropped",
    "no_worker": "no worker serving this model is connected",
    "worker_lost": "the worker running the request died; the request may be retried",
    "internal": "the model raised an unexpected error (a bug; the server logs it)",
}


class ProtocolError(GenjsccError):
    """A message that breaks the protocol; ``code`` is one of :data:`ERROR_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code if code in ERROR_CODES else "bad_request"


@dataclass(frozen=True)
class Limits:
    """Bounds every message is checked against before anything is allocated.

    Attributes:
        max_frames: frames of one message (header + arrays).
        max_header_bytes: bytes of the JSON header.
        max_array_bytes: bytes of one array frame.
        max_message_bytes: bytes of all frames together.
        max_ndim: dimensions of one array.
        max_id_chars: characters of a request id, model name or session id.
    """

    max_frames: int = 17
    max_header_bytes: int = 64 * 1024
    max_array_bytes: int = 64 * 1024 * 1024
    max_message_bytes: int = 256 * 1024 * 1024
    max_ndim: int = 8
    max_id_chars: int = 256


DEFAULT_LIMITS = Limits()

# Scheduling limits of the broker (genjscc serve flags; docs/protocol.md, Limits). Work is
# estimated from each op's ``cost`` (genjscc.serve.registry.Op) in ms on one core of the
# reference machine.
MAX_REQUEST_MS = 10_000.0
"""Default cap on one request's estimated work (``--max-request-ms``): a third of the
client's default 30 s timeout, so the largest accepted request finishes in time on the
reference machine (docs/protocol.md, Limits)."""
SLICE_MS = 250.0
"""Default work of one slice (``--slice-ms``): requests estimated above it are cut into
slices of at most this much work, scheduled one at a time, round-robin between clients."""
MAX_CLIENT_QUEUE = 1024
"""Default requests one client may have queued (``--max-client-queue``) before it gets
``busy``: a quarter of ``--max-queue``, so one client cannot fill the queue."""


# ------------------------------------------------------------------------------- arrays


def wire_array(array: Any) -> np.ndarray:
    """``array`` as a C-contiguous little-endian numpy array of a wire dtype (no copy if it
    already is one). Raises ValueError for dtypes the protocol does not carry (object,
    strings, big structured types)."""
    a = np.asarray(array)
    if a.dtype.kind not in "biufc":
        raise ValueError(f"arrays of dtype {a.dtype} cannot travel (numbers and bools only)")
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and np.little_endian is False):
        a = a.astype(a.dtype.newbyteorder("<"))
    a = np.ascontiguousarray(a)
    if dtype_name(a.dtype) not in DTYPES:
        raise ValueError(f"arrays of dtype {a.dtype} cannot travel; use one of "
                         f"{', '.join(DTYPES)}")
    return a


def dtype_name(dtype: np.dtype) -> str:
    """Wire name of a numpy dtype: ``'<f4'``, ``'|u1'``, ..."""
    dtype = np.dtype(dtype)
    if dtype.itemsize == 1:
        return "|" + dtype.str[1:]
    return "<" + dtype.newbyteorder("<").str[1:]


def array_spec(a: np.ndarray) -> dict[str, Any]:
    return {"dtype": dtype_name(a.dtype), "shape": [int(s) for s in a.shape]}


def encode(header: dict[str, Any], arrays: Sequence[Any] = ()) -> list[bytes | memoryview]:
    """Frames of one message: the JSON header (``header["arrays"]`` filled in) and the arrays.

    The header dict is not modified. Arrays are converted with :func:`wire_array`.
    """
    wired = [wire_array(a) for a in arrays]
    head = dict(header)
    head["arrays"] = [array_spec(a) for a in wired]
    return [json.dumps(head, separators=(",", ":"), allow_nan=False).encode(),
            *(memoryview(a).cast("B") if a.size else b"" for a in wired)]


def _frame_len(frame: Any) -> int:
    return frame.nbytes if isinstance(frame, memoryview) else len(frame)


def frame_bytes(frame: Any) -> bytes | memoryview:
    """The bytes of a received frame (``zmq.Frame`` when received with copy=False)."""
    if isinstance(frame, bytes | bytearray | memoryview):
        return frame
    return frame.buffer  # zmq.Frame: zero-copy memoryview


# ------------------------------------------------------------- broker <-> worker framing
# A broker <-> worker message is [WORKER_MAGIC, JSON control object, *request frames]; the
# broker's ROUTER socket adds the worker's identity in front. Clients never see these.


def worker_message(control: dict[str, Any], frames: Sequence[Any] = ()) -> list[Any]:
    """The frames of a broker <-> worker message: magic, the JSON ``control``, ``frames``."""
    return [WORKER_MAGIC, json.dumps(control).encode(), *frames]


def parse_worker_message(frames: Sequence[Any]) -> dict[str, Any] | None:
    """The JSON control object of a broker <-> worker message (without the identity frame),
    or None if it is not one (wrong magic, too few frames, bad JSON)."""
    if len(frames) < 2 or bytes(frame_bytes(frames[0])) != WORKER_MAGIC:
        return None
    try:
        return parse_json(frames[1], "control")
    except ProtocolError:
        return None


def reply_is_error(header_frame: Any) -> bool:
    """Whether a worker's reply header says ``"ok": false`` (read from its first 200 bytes
    without parsing: replies are written by :func:`json.dumps` with ``ok`` near the start)."""
    return b'"ok":false' in bytes(frame_bytes(header_frame)[:200])


def check_sizes(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> None:
    """ProtocolError ``too_large``/``bad_request`` unless frame count and sizes are in bounds."""
    if not frames:
        raise ProtocolError("bad_request", "empty message: expected a JSON header frame")
    if len(frames) > limits.max_frames:
        raise ProtocolError("too_large", f"{len(frames)} frames; at most {limits.max_frames} "
                                         "(a header and the arrays)")
    sizes = [_frame_len(frame_bytes(f)) for f in frames]
    if sizes[0] > limits.max_header_bytes:
        raise ProtocolError("too_large", f"header of {sizes[0]} bytes; at most "
                                         f"{limits.max_header_bytes}")
    if sum(sizes) > limits.max_message_bytes:
        raise ProtocolError("too_large", f"message of {sum(sizes)} bytes; at most "
                                         f"{limits.max_message_bytes}")
    big = [s for s in sizes[1:] if s > limits.max_array_bytes]
    if big:
        raise ProtocolError("too_large", f"array frame of {big[0]} bytes; at most "
                                         f"{limits.max_array_bytes}")


def parse_json(frame: Any, what: str = "header") -> dict[str, Any]:
    """The JSON object in ``frame``; ProtocolError ``bad_request`` for anything else."""
    raw = bytes(frame_bytes(frame))
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ProtocolError("bad_request", f"{what} JSON nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError("bad_request", f"{what} is not UTF-8 JSON: {error}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_request", f"{what} must be a JSON object, got "
                                           f"{type(obj).__name__}")
    return obj


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def _check_id(value: Any, field: str, limits: Limits, required: bool) -> None:
    if value is None and not required:
        return
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ProtocolError("bad_request", f"header field {field!r} must be a string or integer")
    if isinstance(value, str) and not 0 < len(value) <= limits.max_id_chars:
        raise ProtocolError("bad_request", f"header field {field!r} must have 1.."
                                           f"{limits.max_id_chars} characters")


def check_array_specs(specs: Any, frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS
                      ) -> list[tuple[np.dtype, tuple[int, ...]]]:
    """Validate ``header["arrays"]`` against the array frames: dtype whitelisted, shape a list
    of at most ``max_ndim`` non-negative ints, byte count exactly ``prod(shape) * itemsize``."""
    if specs is None:
        specs = []
    if not isinstance(specs, list):
        raise ProtocolError("bad_request", "header field 'arrays' must be a list")
    if len(specs) != len(frames):
        raise ProtocolError("bad_request", f"header describes {len(specs)} arrays but "
                                           f"{len(frames)} array frames follow")
    out = []
    for i, (spec, frame) in enumerate(zip(specs, frames, strict=True)):
        if not isinstance(spec, dict) or set(spec) - {"dtype", "shape"}:
            raise ProtocolError("bad_request", f"arrays[{i}] must be {{'dtype', 'shape'}}")
        dtype = DTYPES.get(spec.get("dtype")) if isinstance(spec.get("dtype"), str) else None
        if dtype is None:
            raise ProtocolError("bad_request", f"arrays[{i}]: dtype {spec.get('dtype')!r} is "
                                               f"not one of {', '.join(DTYPES)}")
        shape = spec.get("shape")
        if (not isinstance(shape, list) or len(shape) > limits.max_ndim
                or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                           for s in shape)):
            raise ProtocolError("bad_request", f"arrays[{i}]: shape must be a list of at most "
                                               f"{limits.max_ndim} non-negative integers")
        expected = math.prod(shape) * dtype.itemsize
        got = _frame_len(frame_bytes(frame))
        if expected != got:
            raise ProtocolError("bad_request", f"arrays[{i}]: shape {shape} of {spec['dtype']} "
                                               f"needs {expected} bytes, the frame has {got}")
        out.append((dtype, tuple(shape)))
    return out


def parse_request(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Check a request's frames (sizes, header fields, array specs); returns the header.

    Raises ProtocolError with the code to reply with. The arrays are not converted here
    (:func:`arrays_of` does that where they are used).
    """
    check_sizes(frames, limits)
    header = parse_json(frames[0])
    version = header.get("v")
    if type(version) is not int or version != VERSION:  # true and 1.0 equal 1 in Python
        raise ProtocolError("unsupported_version", f"protocol version {version!r}; this server "
                                                   f"speaks version {VERSION}")
    op = header.get("op")
    if not isinstance(op, str) or not 0 < len(op) <= 64:
        raise ProtocolError("bad_request", "header field 'op' must be a non-empty string")
    _check_id(header.get("id"), "id", limits, required=True)
    for field in ("model", "sha256"):
        value = header.get(field)
        if value is not None and (not isinstance(value, str)
                                  or not 0 < len(value) <= limits.max_id_chars):
            raise ProtocolError("bad_request", f"header field {field!r} must be a string of "
                                               f"1..{limits.max_id_chars} characters")
    params = header.get("params", {})
    if not isinstance(params, dict):
        raise ProtocolError("bad_request", "header field 'params' must be a JSON object")
    timeout = header.get("timeout_ms")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                or not 0 < timeout <= 86_400_000):
        raise ProtocolError("bad_request", "header field 'timeout_ms' must be a positive number")
    check_array_specs(header.get("arrays"), frames[1:], limits)
    return header


def arrays_of(header: dict[str, Any], frames: Sequence[Any]) -> list[np.ndarray]:
    """Read-only numpy views of the array frames (``header`` already checked)."""
    out = []
    for spec, frame in zip(header.get("arrays") or [], frames, strict=True):
        dtype = DTYPES[spec["dtype"]]
        buf = frame_bytes(frame)
        a = np.frombuffer(buf, dtype=dtype) if _frame_len(buf) else np.empty(0, dtype)
        out.append(a.reshape(spec["shape"]))
    return out


# ------------------------------------------------------------------------------- replies


def reply_ok(request_id: Any, result: dict[str, Any] | None = None,
             arrays: Sequence[Any] = ()) -> list[bytes | memoryview]:
    """Frames of a success reply."""
    return encode({"v": VERSION, "id": request_id, "ok": True, "result": result or {}}, arrays)


def reply_error(request_id: Any, code: str, message: str) -> list[bytes]:
    """Frames of an error reply (one frame). ``message`` is cut to 2000 characters."""
    code = code if code in ERROR_CODES else "internal"
    head = {"v": VERSION, "id": request_id, "ok": False,
            "error": {"code": code, "message": str(message)[:2000]}, "arrays": []}
    return [json.dumps(head, separators=(",", ":"), default=str).encode()]


def safe_id(header_frame: Any) -> Any:
    """The request id of a header that failed validation, if one can be read (else None), so
    that even an error reply names its request."""
    try:
        obj = parse_json(header_frame)
    except ProtocolError:
        return None
    value = obj.get("id")
    if isinstance(value, str) and len(value) <= DEFAULT_LIMITS.max_id_chars:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def parse_reply(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS
                ) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The header and arrays of a reply (client side); ProtocolError if it is malformed."""
    check_sizes(frames, limits)
    header = parse_json(frames[0], "reply header")
    if header.get("v") != VERSION:
        raise ProtocolError("unsupported_version", f"reply of protocol version "
                                                   f"{header.get('v')!r}, expected {VERSION}")
    if not isinstance(header.get("ok"), bool):
        raise ProtocolError("bad_request", "reply header has no boolean 'ok'")
    check_array_specs(header.get("arrays"), frames[1:], limits)
    return header, arrays_of(header, frames[1:])


def canonical_params(params: dict[str, Any]) -> str:
    """A stable text of ``params`` (sorted keys): requests batch together only when equal."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
