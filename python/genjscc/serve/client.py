"""The one client of ``genjscc serve``, used by the blocks and the command line.

One line gives a remote object with the call signature of the local one::

    from genjscc.serve.client import connect

    server = connect("tcp://gpu-host:5555")                 # nothing is sent yet
    decode = server.decoder("ecct", code)                  # like make_decoder("ecct", code)
    bits = decode(llr)                                     # llr [..., n] -> bits [..., n]
    bp = server.decoder("bp", code, num_iters=20)          # .decode(llr) -> BPResult too
    model = server.lm("small")                             # a NextSymbolModel, as load_model()
    blob = compress(data, model)                           # exactly the local result
    encode = server.batched("jscc-NAME", "encode")         # any other servable op
    outputs = encode(x, snr_db=10.0)                       # numpy arrays in and out

Behaviour that blocks rely on:

* **Timeouts, bounded retries, reconnect.** Each request waits ``timeout_s`` for its reply;
  without one the socket is closed and a new one made (a lazy-pirate client on a DEALER
  socket, so a lost reply never wedges it), up to ``retries`` more times. Every op is safe to
  repeat (an LM step carries its step number; the server answers a repeated step from cache).
* **Fail fast while the server is down.** After a request finds no server, the next requests
  within ``probe_interval_s`` raise :class:`ServerUnavailable` at once, and later ones probe
  with a single attempt, so a flowgraph marks frames failed without stalling and picks up
  again within about ``probe_interval_s`` of the server coming back.
* **Weights check.** Remote models carry their server's weights sha256. A client that knows
  which weights it expects (a zoo model, a local file, a container's header) refuses another
  model (:class:`WeightsMismatch`), and every request names the expected sha256, so a server
  restarted with other weights is refused too.

Errors are :class:`ServeError` (a :class:`~genjscc.errors.GenjsccError`: one line, exit
status 2 in the CLI): :class:`ServerUnavailable` (no reply), :class:`ServerError` (an error
reply, with ``code``), :class:`WeightsMismatch`, :class:`InvalidInput` (also a ValueError).
CurveZMQ keys come from ``curve_keys=DIR`` or the ``GENJSCC_CURVE_KEYS`` environment variable.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import zmq

from genjscc.errors import GenjsccError
from genjscc.serve import protocol as P

if TYPE_CHECKING:  # the client imports no torch at module level
    from genjscc.core.fec.codes import Code

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 2
PROBE_INTERVAL_S = 0.5
NOTICE_EVERY_S = 5.0
"""How often a waiting request calls ``Client.notice`` (when set)."""
CONNECT_TIMEOUT_S = 2.0
CURVE_ENV = "GENJSCC_CURVE_KEYS"


class ServeError(GenjsccError):
    """Any failure to get a result from the inference server."""

    code = "unavailable"


class ServerUnavailable(ServeError):
    """No reply: the server is down, unreachable, overloaded or refused the handshake."""


class _NoConnection(ServerUnavailable):
    """No connection at all (retrying at once would not help)."""


class ServerError(ServeError):
    """The server answered with an error reply (``code``: see docs/protocol.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidInput(ServerError, ValueError):
    """The server found the input unsuitable for the model (shape, dtype, values)."""


class WeightsMismatch(ServerError):
    """The server's model has other weights than the client expects."""

    def __init__(self, message: str) -> None:
        super().__init__("weights_mismatch", message)


class Reply(NamedTuple):
    result: dict[str, Any]
    arrays: list[np.ndarray]


def parse_backend(backend: str | None) -> str | None:
    """``None`` for ``"local"`` (or empty/None), the endpoint for ``tcp://HOST:PORT`` or
    ``ipc://PATH``; ValueError for anything else."""
    if backend is None or str(backend).strip() in ("", "local"):
        return None
    text = str(backend).strip()
    if text.startswith("tcp://"):
        host, sep, port = text[6:].rpartition(":")
        if not host or not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"backend {backend!r}: write tcp://HOST:PORT, e.g. "
                             "tcp://127.0.0.1:5555")
        return text
    if text.startswith("ipc://") and len(text) > 6:
        return text
    raise ValueError(f"backend {backend!r}: use 'local' (in-process torch) or "
                     "'tcp://HOST:PORT' (a genjscc serve inference server)")


def connect(backend: str, **options: Any) -> Client:
    """A :class:`Client` for ``backend`` (``tcp://HOST:PORT``); no connection is made yet."""
    endpoint = parse_backend(backend)
    if endpoint is None:
        raise ValueError("connect() needs a server backend tcp://HOST:PORT, not 'local'")
    return Client(endpoint, **options)


class Client:
    """A client of one ``genjscc serve`` endpoint (see the module docstring).

    Args:
        endpoint: ``tcp://HOST:PORT`` of the server.
        timeout_s: seconds to wait for each reply.
        retries: extra attempts after a request got no reply.
        curve_keys: directory of CurveZMQ keys (default ``$GENJSCC_CURVE_KEYS``).
        probe_interval_s: while the server is down, requests fail at once for this long
            after each failed attempt.
        connect_timeout_s: seconds to wait for a connection (and CurveZMQ handshake).

    Thread-safe: requests from several threads are serialized on one socket; give each
    thread its own client for parallel requests.
    """

    def __init__(self, endpoint: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retries: int = DEFAULT_RETRIES, curve_keys: str | None = None,
                 probe_interval_s: float = PROBE_INTERVAL_S,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 limits: P.Limits = P.DEFAULT_LIMITS) -> None:
        if parse_backend(endpoint) is None:
            raise ValueError(f"endpoint {endpoint!r}: write tcp://HOST:PORT")
        if not timeout_s > 0 or not isinstance(retries, int) or retries < 0:
            raise ValueError("timeout_s must be > 0 and retries an integer >= 0")
        self.endpoint = endpoint
        self.timeout_s, self.retries = float(timeout_s), retries
        self.probe_interval_s = float(probe_interval_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.curve_keys = curve_keys if curve_keys is not None else os.environ.get(CURVE_ENV)
        self.limits = limits
        self._prefix = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._sock: zmq.Socket | None = None
        self._down_since: float | None = None
        self._next_try = 0.0
        self._models: list[dict[str, Any]] | None = None
        self.server_limits: dict[str, Any] = {}  # the "limits" of its last models reply
        self.notice: Callable[[str], None] | None = None
        """Called with a line while a reply is late (every NOTICE_EVERY_S) and before each
        retry, so a command can say why it waits (``genjscc ber --backend``)."""
        self._to_close: deque = deque()
        self._curve = None
        if self.curve_keys:
            from genjscc.serve.security import client_keys

            self._curve = client_keys(self.curve_keys)

    # ----------------------------------------------------------------------- socket

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = zmq.Context.instance().socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # queue nothing for a peer that is not there
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
            sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_message_bytes)
            if self._curve is not None:
                sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = self._curve
            sock.connect(self.endpoint)
            self._sock = sock
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def close(self) -> None:
        """Close the socket (a later request opens a new one)."""
        with self._lock:
            self._reset()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def is_down(self) -> bool:
        """True while the last attempt found no server."""
        return self._down_since is not None

    # ----------------------------------------------------------------------- requests

    def request(self, op: str, model: str | None = None, arrays: Sequence[Any] = (),
                params: dict[str, Any] | None = None, sha256: str | None = None,
                timeout_s: float | None = None, retries: int | None = None) -> Reply:
        """Send one request and return its reply's ``(result, arrays)``.

        Raises:
            ServerUnavailable: no reply after ``retries + 1`` attempts (or the server is
                known to be down and the next probe is not due yet).
            ServerError: the server answered with an error (``InvalidInput``,
                ``WeightsMismatch`` for those codes).
        """
        header: dict[str, Any] = {"v": P.VERSION, "op": op}
        if model is not None:
            header["model"] = model
        if sha256 is not None:
            header["sha256"] = sha256
        if params:
            header["params"] = params
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        header["timeout_ms"] = max(1, int(timeout * 1000))
        with self._lock:
            self._flush_closes()
            now = time.monotonic()
            attempts = 1 + (self.retries if retries is None else retries)
            if self._down_since is not None:
                if now < self._next_try:
                    raise ServerUnavailable(
                        f"the genjscc server at {self.endpoint} is unreachable (for "
                        f"{now - self._down_since:.1f} s); next attempt in "
                        f"{self._next_try - now:.2f} s")
                attempts = 1  # a probe
            last, tried = "", 0
            for _ in range(attempts):
                tried += 1
                header["id"] = f"{self._prefix}-{next(self._ids)}"
                frames = P.encode(header, arrays)
                try:
                    reply = self._attempt(header["id"], frames, timeout,
                                          f"attempt {tried} of {attempts}")
                except ServerUnavailable as error:
                    last = str(error)
                    self._reset()
                    if isinstance(error, _NoConnection):
                        break
                    if self.notice is not None and tried < attempts:
                        self.notice(f"{last}; retrying (attempt {tried + 1} of {attempts})")
                    continue
                self._down_since = None
                return _result(reply)
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
            self._next_try = now + self.probe_interval_s
            raise ServerUnavailable(last + (f" ({tried} attempts)" if tried > 1 else ""))

    def _attempt(self, request_id: str, frames: list, timeout: float, which: str = ""
                 ) -> tuple[dict[str, Any], list[np.ndarray]]:
        sock = self._socket()
        connect_wait = min(timeout, self.connect_timeout_s)
        if not sock.poll(int(connect_wait * 1000), zmq.POLLOUT):
            hint = ("or its CurveZMQ keys are not these" if self._curve else
                    "or it wants CurveZMQ keys: set GENJSCC_CURVE_KEYS")
            raise _NoConnection(f"cannot connect to the genjscc server at {self.endpoint} "
                                f"within {connect_wait:.1f} s: is `genjscc serve` running "
                                f"there? ({hint})")
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.ZMQError as error:
            raise ServerUnavailable(f"cannot send to {self.endpoint}: {error}") from None
        start = time.monotonic()
        deadline = start + timeout
        while True:
            remaining = deadline - time.monotonic()
            wait = remaining if self.notice is None else min(remaining, NOTICE_EVERY_S)
            if remaining <= 0 or not sock.poll(max(1, int(wait * 1000))):
                if self.notice is not None and time.monotonic() < deadline:  # a notice is due
                    self.notice(f"waiting for the genjscc server at {self.endpoint}: no reply "
                                f"for {time.monotonic() - start:.0f} s of {timeout:.0f} s "
                                f"({which})")
                    continue
                raise ServerUnavailable(f"no reply from the genjscc server at {self.endpoint} "
                                        f"within {timeout:.1f} s")
            reply = sock.recv_multipart(copy=False)
            if reply and len(reply[0]) == 0:
                reply = reply[1:]
            try:
                header, arrays = P.parse_reply(reply, self.limits)
            except P.ProtocolError:
                continue  # not a reply of ours
            if header.get("id") == request_id:
                return header, arrays
            # a late reply to an earlier request (a fire-and-forget close): ignore it

    def _send_only(self, header: dict[str, Any]) -> None:
        """Send without waiting for the reply (closing LM sessions)."""
        header = {"v": P.VERSION, "id": f"{self._prefix}-{next(self._ids)}", **header}
        try:
            sock = self._socket()
            sock.send_multipart(P.encode(header), flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # the server expires idle sessions anyway

    def _flush_closes(self) -> None:
        while self._to_close:
            model, sid = self._to_close.popleft()
            if self._down_since is None:
                self._send_only({"op": "lm_end", "model": model, "params": {"session": sid}})

    # ---------------------------------------------------------------------- broker ops

    def health(self, timeout_s: float | None = None) -> dict[str, Any]:
        """The server's ``health`` result (status, workers, models, uptime)."""
        return self.request("health", timeout_s=timeout_s).result

    def stats(self) -> dict[str, Any]:
        """The server's ``stats`` result (requests, batch sizes, latency percentiles)."""
        return self.request("stats").result

    def models(self, refresh: bool = True) -> list[dict[str, Any]]:
        """What the server serves: name, kind, sha256, device, info, ops, workers."""
        if refresh or self._models is None:
            result = self.request("models").result
            self._models = list(result.get("models", []))
            limits = result.get("limits")
            self.server_limits = limits if isinstance(limits, dict) else {}
        return self._models

    def find_model(self, kind: str, name: str | None = None, sha256: str | None = None,
                   h_sha256: str | None = None) -> dict[str, Any]:
        """The served model of ``kind`` named ``name`` (else with weights ``sha256``, else,
        for codes, with parity-check hash ``h_sha256``).

        Raises:
            WeightsMismatch: the model named ``name`` has other weights than ``sha256``.
            ServeError: no such model is served.
        """
        models = [m for m in self.models() if m.get("kind") == kind]
        by_name = [m for m in models if name is not None and name in (
            m.get("name"), (m.get("info") or {}).get("model_id"))]
        if by_name:
            found = by_name[0]
            if sha256 is not None and found.get("sha256") != sha256:
                raise WeightsMismatch(
                    f"the server's model {found['name']!r} has weights sha256 "
                    f"{str(found.get('sha256'))[:16]}..., this side expects {sha256[:16]}...: "
                    "both sides must use identical weights")
            return found
        for key, value in (("sha256", sha256), ("h_sha256", h_sha256)):
            if value is None:
                continue
            for m in models:
                if (m.get(key) if key == "sha256" else (m.get("info") or {}).get(key)) == value:
                    return m
        served = ", ".join(f"{m['name']} ({m['kind']})" for m in self.models(refresh=False))
        wanted = name or (sha256 and f"sha256 {sha256[:16]}...") or "one for this code"
        raise ServerError("unknown_model", f"the server at {self.endpoint} serves no {kind} "
                          f"model {wanted}; it serves {served or 'nothing'} (start it with "
                          "--models ...)")

    # ---------------------------------------------------------------------- remote models

    def decoder(self, name: str, code: Code, num_iters: int = 50, *, model: str | None = None,
                **options: Any) -> RemoteDecoder:
        """A remote channel decoder with :func:`~genjscc.core.fec.decoders.make_decoder`'s
        signature: ``"ecct"`` (option ``model``: zoo name or a local ``.safetensors`` whose
        sha256 the server must match) or a BP family name (``bp``, ``minsum``, ...,
        ``ldpc-cpp``, ``none``) run on the server's ``bp:CODE`` model for this code."""
        key = str(name).strip().lower().replace("_", "-")
        if key == "ecct":
            return RemoteDecoder(self, "ecct", code, {}, model=model)
        options = {k: v for k, v in options.items() if k != "device"}
        params = {"decoder": key, "num_iters": int(num_iters), "options": options}
        return RemoteDecoder(self, "bp", code, params)

    def lm(self, spec: str = "small", *, expected_sha256: str | None = None
           ) -> RemoteNextSymbolModel:
        """A remote :class:`~genjscc.core.source.lm.NextSymbolModel` (as
        :func:`~genjscc.core.source.codec.load_model` returns): ``small``, a zoo name, or a
        model id (``smollm2-135m``). Without ``expected_sha256`` the local zoo's sha256 of
        that name is expected when it has one."""
        from genjscc.core.source.codec import SMALL_ALIAS

        name = SMALL_ALIAS.get(spec, spec)
        if expected_sha256 is None:
            expected_sha256 = _local_sha256(name)
        desc = self.find_model("lm", name=name, sha256=expected_sha256)
        if expected_sha256 is not None and desc.get("sha256") != expected_sha256:
            raise WeightsMismatch(f"no served LM with weights sha256 {expected_sha256[:16]}...")
        return RemoteNextSymbolModel(self, desc)

    def batched(self, model: str, op: str, expected_sha256: str | None = None) -> RemoteOp:
        """A callable for any op of a served model: ``call(*arrays, **params)`` returns the
        output array (or a list of them); for kinds registered with
        :func:`genjscc.serve.registry.register_kind` (e.g. JSCC encoders and decoders)."""
        return RemoteOp(self, model, op, expected_sha256)


def _result(reply: tuple[dict[str, Any], list[np.ndarray]]) -> Reply:
    header, arrays = reply
    if header.get("ok"):
        result = header.get("result")
        return Reply(result if isinstance(result, dict) else {}, arrays)
    error = header.get("error") if isinstance(header.get("error"), dict) else {}
    code, message = str(error.get("code", "internal")), str(error.get("message", "error"))
    code = code if code in P.ERROR_CODES else "internal"
    if code == "weights_mismatch":
        raise WeightsMismatch(message)
    if code == "invalid_input":
        raise InvalidInput(code, message)
    raise ServerError(code, f"server error {code}: {message}")


def _local_sha256(name: str | None) -> str | None:
    """sha256 of a local zoo model or ``.safetensors`` file named ``name`` (None if unknown)."""
    if not name:
        return None
    from pathlib import Path

    from genjscc.zoo import list_models, sha256_file

    for entry in list_models():
        if entry.name == name:
            return entry.sha256
    path = Path(name).expanduser()
    if path.suffix == ".safetensors" and path.is_file():
        return sha256_file(path)
    return None


def _as_numpy_f32(llr: Any) -> tuple[np.ndarray, Any]:
    """``(float32 numpy array, torch device or None)`` of a tensor or array of LLRs."""
    device = None
    if hasattr(llr, "detach"):
        device = llr.device
        llr = llr.detach().to("cpu").numpy()
    return np.ascontiguousarray(np.asarray(llr), dtype=np.float32), device


class RemoteDecoder:
    """A decoder on the server: ``llr [..., n] -> bits uint8 [..., n]`` (torch in, torch out;
    numpy in, numpy out), and ``decode(llr)`` -> :class:`~genjscc.core.fec.bp.BPResult`
    (``llr`` field ``None``: posteriors stay on the server)."""

    def __init__(self, client: Client, kind: str, code: Code, params: dict[str, Any],
                 model: str | None = None) -> None:
        from genjscc.serve.registry import parity_check_sha256

        self.client, self.kind, self.code, self.params = client, kind, code, params
        self.n = int(code.n)
        self.h_sha256 = parity_check_sha256(code.H)
        self.model_name = model
        self.expected_sha256: str | None = None
        if kind == "ecct":
            from genjscc.core.ecct.decoder import zoo_name

            self.model_name = str(model) if model is not None else zoo_name(code.name)
            self.expected_sha256 = _local_sha256(self.model_name)
        self._desc: dict[str, Any] | None = None

    def resolve(self) -> dict[str, Any]:
        """Find (once) the served model and check it decodes this code with these weights."""
        if self._desc is None:
            if self.kind == "ecct":
                desc = self.client.find_model("ecct", name=self.model_name,
                                              sha256=self.expected_sha256)
            else:
                desc = self.client.find_model("bp", h_sha256=self.h_sha256)
            if (desc.get("info") or {}).get("h_sha256") != self.h_sha256:
                raise ServerError("unknown_model", f"the server's {self.kind} model "
                                  f"{desc['name']!r} was made for another parity-check matrix "
                                  f"than {self.code.name}")
            self._desc = desc
        return self._desc

    def _run(self, llr: Any) -> tuple[list[np.ndarray], tuple[int, ...], Any]:
        x, device = _as_numpy_f32(llr)
        if x.ndim == 0 or x.shape[-1] != self.n:
            raise ValueError(f"llr must have shape [..., n] with n = {self.n}, got "
                             f"{tuple(x.shape)}")
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.n)
        desc = self.resolve()
        sha = self.expected_sha256 or desc["sha256"]
        step = max(1, min(1 << 16, self.client.limits.max_array_bytes // (4 * self.n),
                          self._max_rows(desc)))
        parts: list[list[np.ndarray]] = []
        try:
            for start in range(0, flat.shape[0], step):
                reply = self.client.request("decode", desc["name"], [flat[start:start + step]],
                                            self.params or None, sha256=sha)
                parts.append(reply.arrays)
        except ServerError as error:
            if error.code in ("unknown_model", "weights_mismatch", "unknown_op"):
                self._desc = None  # the server changed: look the model up again next time
            raise
        if not parts:
            outs = [np.zeros((0, self.n), np.uint8), np.zeros(0, np.int32), np.zeros(0, np.uint8)]
        else:
            outs = [np.concatenate([p[j] for p in parts]) for j in range(len(parts[0]))]
        return outs, lead, device

    def _max_rows(self, desc: dict[str, Any]) -> int:
        """Rows per request under the server's ``max_request_ms`` for this op's cost."""
        cost = ((desc.get("ops") or {}).get("decode") or {}).get("cost")
        limit = self.client.server_limits.get("max_request_ms")
        if not isinstance(cost, dict) or not isinstance(limit, int | float):
            return 1 << 16
        scale = self.params.get(cost.get("scale"), cost.get("scale_default", 1)) \
            if isinstance(cost.get("scale"), str) else 1
        per_row = self.n * float(cost.get("ms_per_value", 0.0)) * max(1, int(scale))
        return int(limit // per_row) if per_row > 0 else 1 << 16

    def __call__(self, llr: Any) -> Any:
        outs, lead, device = self._run(llr)
        bits = outs[0].reshape(*lead, self.n)
        return _like(bits, device)

    def decode(self, llr: Any):
        """Bits, iterations and syndrome check of every word (a BPResult)."""
        import torch

        from genjscc.core.fec.bp import BPResult

        outs, lead, device = self._run(llr)
        bits = _like(outs[0].reshape(*lead, self.n), device or torch.device("cpu"))
        if len(outs) >= 3:
            iters = torch.from_numpy(outs[1].astype(np.int32)).reshape(lead)
            ok = torch.from_numpy(outs[2].astype(bool)).reshape(lead)
        else:
            iters = torch.full(lead, -1, dtype=torch.int32)
            ok = ~self.code.syndrome(bits.reshape(-1, self.n).cpu()).any(-1).reshape(lead)
        run = int(iters.max()) if iters.numel() else 0
        return BPResult(bits, None, iters.to(bits.device), ok.to(bits.device), run)

    def __repr__(self) -> str:
        return f"RemoteDecoder({self.kind}, n={self.n}, {self.client.endpoint})"


def _like(array: np.ndarray, device: Any) -> Any:
    if device is None:
        return array
    import torch

    return torch.from_numpy(np.array(array)).to(device)


class RemoteOp:
    """``call(*arrays, **params)`` on a served model's op (see :meth:`Client.batched`)."""

    def __init__(self, client: Client, model: str, op: str, expected_sha256: str | None) -> None:
        self.client, self.model, self.op = client, model, op
        self.expected_sha256 = expected_sha256 or _local_sha256(model)

    def __call__(self, *arrays: Any, **params: Any) -> np.ndarray | list[np.ndarray]:
        data = [a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)
                for a in arrays]
        reply = self.client.request(self.op, self.model, data, params or None,
                                    sha256=self.expected_sha256)
        return reply.arrays[0] if len(reply.arrays) == 1 else reply.arrays


class _Session:
    """An LM session on the server; closed (lazily) when no state refers to it any more."""

    def __init__(self, client: Client, model: str, sid: str, rows: int) -> None:
        self.sid, self.rows = sid, rows
        weakref.finalize(self, client._to_close.append, (model, sid))


class RemoteLMState(NamedTuple):
    session: _Session
    steps: int


class RemoteNextSymbolModel:
    """A :class:`~genjscc.core.source.lm.NextSymbolModel` whose ``step`` runs on the server.

    The server steps the same model code with the same row count (the coder's ``rows``),
    row block (``row_block``, see SmallByteCoderModel) and thread count
    (``torch.get_num_threads()`` at ``start_state``, which the coder pins), so the
    probabilities are bit-identical to local ones on the same device type. ``device`` is the
    CPU (where the coder's tensors live); ``compute_device`` is the server's device kind,
    which containers record.
    """

    def __init__(self, client: Client, desc: dict[str, Any]) -> None:
        import torch

        info = desc.get("info") or {}
        self.client, self.server_model = client, desc["name"]
        self.model_id = str(info["model_id"])
        self.weights_sha256 = str(desc["sha256"])
        self.vocab_size = int(info["vocab_size"])
        self.bos_id = int(info["bos_id"])
        self.max_symbols = int(info["max_symbols"])
        self.default_batch = int(info["default_batch"])
        self.device = torch.device("cpu")
        self.compute_device = str(desc.get("device", "cpu"))
        self.torch_version = str(info.get("torch_version") or torch.__version__)
        self.byte_tokenizer = info.get("tokenizer") == "bytes"
        self.row_blocks = tuple(int(b) for b in info.get("row_blocks") or (1,))
        self.row_block = int(info.get("row_block", 1))
        arithmetic = str(info.get("arithmetic", ""))
        # an exact arithmetic is the container's as it is; a float one is the server's
        # fingerprint (see genjscc.core.source.lm.arithmetic_of)
        self.arithmetic = "" if arithmetic.startswith("float:") else arithmetic
        self.remote_fingerprint = arithmetic.removeprefix("float:")
        self._desc = desc

    def with_row_block(self, row_block: int) -> RemoteNextSymbolModel:
        """The same remote model stepping in blocks of ``row_block`` rows."""
        if row_block == self.row_block:
            return self
        if row_block not in self.row_blocks:
            raise GenjsccError(f"the server's {self.server_model!r} cannot step in blocks of "
                               f"{row_block} rows (it can: {list(self.row_blocks)}); a newer "
                               "genjscc serve can")
        other = RemoteNextSymbolModel(self.client, self._desc)
        other.row_block = row_block
        return other

    def _request(self, op: str, arrays: Sequence[Any] = (), params: dict | None = None) -> Reply:
        return self.client.request(op, self.server_model, arrays, params,
                                   sha256=self.weights_sha256)

    def start_state(self, batch: int) -> RemoteLMState:
        import torch

        params = {"rows": int(batch), "threads": torch.get_num_threads()}
        if self.row_block != 1:
            params["row_block"] = self.row_block
        reply = self._request("lm_start", params=params)
        sid = reply.result.get("session")
        if not isinstance(sid, str):
            raise ServerError("internal", "lm_start reply without a session id")
        return RemoteLMState(_Session(self.client, self.server_model, sid, int(batch)), 0)

    def step(self, state: RemoteLMState, tokens: Any) -> tuple[RemoteLMState, Any]:
        import torch

        tok = np.ascontiguousarray(tokens.detach().cpu().numpy() if hasattr(tokens, "detach")
                                   else np.asarray(tokens), dtype="<i8")
        reply = self._request("lm_step", [tok], {"session": state.session.sid,
                                                 "t": state.steps})
        probs = reply.arrays[0] if reply.arrays else None
        if probs is None or probs.shape != (state.session.rows, self.vocab_size) or \
                probs.dtype.kind != ("i" if self.arithmetic else "f"):
            raise ServerError("internal", "lm_step reply of the wrong shape or type")
        # an exact model's integer table (int32 on the wire), a float model's probabilities
        table = probs.astype(np.int64) if self.arithmetic else probs.copy()
        return RemoteLMState(state.session, state.steps + 1), torch.from_numpy(table)

    def tokenize(self, data: bytes) -> list[int]:
        if self.byte_tokenizer:
            return list(bytes(data))
        reply = self._request("lm_tokenize", [np.frombuffer(bytes(data), dtype=np.uint8)])
        return [int(x) for x in reply.arrays[0]]

    def detokenize(self, symbols: list[int]) -> bytes:
        if self.byte_tokenizer:
            return bytes(symbols)
        reply = self._request("lm_detokenize", [np.asarray(symbols, dtype="<i8")])
        return reply.arrays[0].tobytes()

    def __repr__(self) -> str:
        return f"RemoteNextSymbolModel({self.model_id}, {self.client.endpoint})"
