"""The broker of ``genjscc serve``: clients in, dynamic batches out to N worker processes.

::

    clients (DEALER/REQ) --> ROUTER  [broker: validate, queue, batch, stats]  ROUTER <-- workers
                             --bind                                          --worker-bind
                             tcp://127.0.0.1:5555                            tcp://127.0.0.1:5556

* The broker validates every request (:mod:`genjscc.serve.protocol`) and answers malformed
  ones with an error reply itself; workers only see well-formed requests.
* **Dynamic batching** per model and op: requests of a batched op (``merge``) with the same
  params and array layouts wait in one queue; the queue is sent to a free worker as one task
  when it holds ``max_batch`` requests or its oldest request has waited ``max_delay_ms``
  (``max_batch=1``: no batching). The worker concatenates them along axis 0 and runs the model
  once. Session ops (LM steps) are sent to the session's worker at once, several to a task
  when several are queued; the worker merges the LM steps it may (see
  :mod:`genjscc.serve.registry`).
* **Workers**: ``workers`` local processes are started and restarted if they die; more can
  connect from other hosts (``genjscc serve --worker --connect tcp://HOST:5556``). Each holds
  one task at a time; a worker silent for :data:`WORKER_TIMEOUT_S` is dropped and its
  requests go to another worker (LM session requests get ``worker_lost``).
* **LM sessions** live on one worker; the broker routes a session's steps there.
* Ops answered by the broker: ``health``, ``models`` (name, kind, weights sha256, device,
  info) and ``stats`` (requests, errors, batch-size histogram, latency percentiles).
"""

from __future__ import annotations

import contextlib
import hmac
import itertools
import json
import math
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import zmq

from genjscc.errors import GenjsccError
from genjscc.serve import protocol as P
from genjscc.serve.security import read_worker_secret, worker_proof

WORKER_TIMEOUT_S = 2.0
DEFAULT_DEADLINE_S = 120.0
MAX_BATCH_ROWS = 1 << 16
MAX_REQUEST_MS, SLICE_MS, MAX_CLIENT_QUEUE = P.MAX_REQUEST_MS, P.SLICE_MS, P.MAX_CLIENT_QUEUE
SESSION_IDLE_S = 600.0
"""The broker forgets an LM session idle this long (the worker drops it too)."""
WORKER_SECRET_ENV = "GENJSCC_WORKER_SECRET"
"""How a broker hands its worker secret (hex) to the local workers it starts."""
RESPAWN_DELAY_S = 1.0
DRAIN_BATCH = 256
BROKER_OPS = ("health", "models", "stats")


@dataclass
class ServeConfig:
    """Options of :class:`Broker` (the ``genjscc serve`` flags)."""

    models: list[str]
    device: str = "cpu"
    bind: str = "tcp://127.0.0.1:5555"
    worker_bind: str | None = None
    workers: int = 1
    max_batch: int = 32
    max_delay_ms: float = 2.0
    threads: int = 1
    curve_keys: str | None = None
    max_queue: int = 4096
    max_client_queue: int = MAX_CLIENT_QUEUE
    max_request_ms: float = MAX_REQUEST_MS
    slice_ms: float = SLICE_MS
    worker_secret: str | None = None
    limits: P.Limits = field(default_factory=P.Limits)

    def __post_init__(self) -> None:
        if not isinstance(self.workers, int) or self.workers < 0:
            raise GenjsccError(f"--workers must be >= 0, got {self.workers}")
        if not isinstance(self.max_batch, int) or not 1 <= self.max_batch <= 4096:
            raise GenjsccError(f"--max-batch must be in [1, 4096], got {self.max_batch}")
        if not 0 <= self.max_delay_ms <= 10_000:
            raise GenjsccError(f"--max-delay-ms must be in [0, 10000], got {self.max_delay_ms}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise GenjsccError(f"--threads must be >= 1, got {self.threads}")
        if not isinstance(self.max_client_queue, int) or self.max_client_queue < 1:
            raise GenjsccError(f"--max-client-queue must be >= 1, got {self.max_client_queue}")
        if not 0 < self.slice_ms <= self.max_request_ms:
            raise GenjsccError(f"--slice-ms must be in (0, --max-request-ms], got "
                               f"{self.slice_ms} (--max-request-ms {self.max_request_ms})")
        if self.workers and not self.models:
            raise GenjsccError("--models is empty: name at least one model to serve (e.g. "
                               "--models ecct-polar_n64_k32,lm-small,bp:LDPC_N49_K24)")


def default_worker_bind(bind: str, loopback: bool = False) -> str:
    """The worker endpoint next to ``bind``: port + 1 (``ipc://X`` -> ``X-workers``), on the
    same host, or on 127.0.0.1 with ``loopback`` (the default without CurveZMQ: workers from
    other hosts then need an explicit ``--worker-bind``)."""
    parts = urlsplit(bind)
    if parts.scheme == "tcp":
        host, _, port = parts.netloc.rpartition(":")
        if loopback and not is_loopback(bind):
            host = "127.0.0.1"
        if port == "*" or port == "0":
            return f"tcp://{host}:*"
        if port.isdigit():
            return f"tcp://{host}:{int(port) + 1}"
    if parts.scheme == "ipc":
        return bind + "-workers"
    raise GenjsccError(f"--bind {bind!r}: write tcp://HOST:PORT (or ipc://PATH)")


def is_loopback(endpoint: str) -> bool:
    host = urlsplit(endpoint).netloc.rpartition(":")[0].strip("[]")
    return endpoint.startswith(("ipc://", "inproc://")) or host in ("127.0.0.1", "localhost",
                                                                    "::1")


def _connectable(endpoint: str) -> str:
    """A bound endpoint as a local process connects to it (0.0.0.0 / * -> 127.0.0.1)."""
    for wildcard in ("//0.0.0.0:", "//*:", "//[::]:"):
        endpoint = endpoint.replace(wildcard, "//127.0.0.1:")
    return endpoint


class Pending:
    """One queued client request (or one slice of one: ``parent`` set)."""

    __slots__ = ("arrival", "attempts", "client", "cost", "deadline", "envelope", "frames",
                 "header", "key", "merge", "model", "op", "parent", "part", "rows", "session")

    def __init__(self, envelope: list, frames: list, header: dict[str, Any], now: float) -> None:
        self.envelope, self.frames, self.header = envelope, frames, header
        self.model: str = header.get("model") or ""
        self.op: str = header["op"]
        self.arrival = now
        timeout = header.get("timeout_ms")
        self.deadline = now + (timeout / 1000.0 if timeout else DEFAULT_DEADLINE_S)
        arrays = header.get("arrays") or []
        self.rows = int(arrays[0]["shape"][0]) if arrays and arrays[0]["shape"] else 1
        self.attempts = 0
        self.key: tuple = ()
        self.merge = False
        self.session: str | None = None
        self.client = bytes(P.frame_bytes(envelope[0])) if envelope else b""
        self.cost = 0.0  # estimated ms of work (Broker._cost_ms)
        self.parent: Sliced | None = None
        self.part = 0


class Sliced:
    """A request cut into slices along axis 0: the replies of its parts, joined when all came."""

    __slots__ = ("done", "parts", "request")

    def __init__(self, request: Pending, count: int) -> None:
        self.request = request
        self.parts: list[tuple[dict, list[np.ndarray]] | None] = [None] * count
        self.done = False


class FairQueue:
    """The requests of one batch key: one FIFO per client, so that the broker can serve the
    clients in turn (:meth:`Broker._next_client`) instead of in arrival order, where a
    client with thousands of queued requests would hold up everyone behind them."""

    def __init__(self) -> None:
        self.by_client: dict[bytes, deque] = {}
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def append(self, p: Pending, front: bool = False) -> None:
        queue = self.by_client.setdefault(p.client, deque())
        if front:
            queue.appendleft(p)
        else:
            queue.append(p)
        self.size += 1

    def oldest(self) -> Pending:
        return min((q[0] for q in self.by_client.values()), key=lambda p: p.arrival)

    def pop(self, client: bytes) -> Pending:
        queue = self.by_client[client]
        p = queue.popleft()
        if not queue:
            del self.by_client[client]
        self.size -= 1
        return p

    def expired(self, now: float) -> list[Pending]:
        """Remove and return the requests whose deadline has passed."""
        out = []
        for client in list(self.by_client):
            queue = self.by_client[client]
            keep = deque(p for p in queue if now <= p.deadline)
            if len(keep) != len(queue):
                out += [p for p in queue if now > p.deadline]
                self.size -= len(queue) - len(keep)
                if keep:
                    self.by_client[client] = keep
                else:
                    del self.by_client[client]
        return out


@dataclass
class WorkerState:
    wid: bytes
    models: dict[str, dict[str, Any]]
    last_seen: float
    pid: int | None = None
    host: str = ""
    task: int | None = None
    items: list[Pending] = field(default_factory=list)
    pinned: deque = field(default_factory=deque)
    sessions: set = field(default_factory=set)
    tasks_done: int = 0
    started: float = field(default_factory=time.monotonic)


class ModelStats:
    """Counters of one model (``stats`` op)."""

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.rows = 0
        self.batches = 0
        self.batch_sizes: Counter = Counter()
        self.latency = deque(maxlen=20_000)

    def report(self) -> dict[str, Any]:
        lat = np.asarray(self.latency, dtype=np.float64) * 1e3
        pct = ({f"p{q}": round(float(np.percentile(lat, q)), 3) for q in (50, 90, 99)}
               | {"max": round(float(lat.max()), 3), "samples": int(lat.size)}
               if lat.size else {})
        return {"requests": self.requests, "errors": self.errors, "rows": self.rows,
                "batches": self.batches,
                "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
                "latency_ms": pct}


def _valid_description(desc: Any) -> bool:
    """A model description from a worker has the fields the broker relies on."""
    if not isinstance(desc, dict):
        return False
    if not all(isinstance(desc.get(k), str) and 0 < len(desc[k]) <= 256
               for k in ("name", "kind", "sha256", "device")):
        return False
    ops = desc.get("ops")
    if not isinstance(desc.get("info"), dict) or not isinstance(ops, dict) or not ops:
        return False
    return all(isinstance(name, str) and isinstance(op, dict)
               and isinstance(op.get("merge"), bool)
               and op.get("session") in (None, "start", "use", "end")
               and _valid_cost(op.get("cost"))
               for name, op in ops.items())


def _valid_cost(cost: Any) -> bool:
    """An op's ``cost`` (see :func:`_cost_ms`): absent, or finite non-negative numbers."""
    if cost is None:
        return True
    if not isinstance(cost, dict):
        return False
    per_value, default = cost.get("ms_per_value"), cost.get("scale_default", 1)
    number = (isinstance(per_value, int | float) and not isinstance(per_value, bool)
              and math.isfinite(per_value) and per_value >= 0)
    scale = cost.get("scale") is None or isinstance(cost.get("scale"), str)
    return number and scale and (isinstance(default, int) and not isinstance(default, bool)
                                 and default >= 0)


class Broker:
    """The server process's broker (module docstring). ``start()``, then ``run()``."""

    def __init__(self, config: ServeConfig, log=None) -> None:
        self.cfg = config
        self.log = log or (lambda text: print(f"genjscc serve: {text}", file=sys.stderr,
                                              flush=True))
        self.ctx = zmq.Context()
        self.frontend = self.backend = None
        self.auth = None
        self.workers: dict[bytes, WorkerState] = {}
        self.queues: dict[tuple, FairQueue] = {}
        self.waiting: dict[str, deque] = {}
        self.sessions: dict[str, WorkerState] = {}
        self.session_used: dict[str, float] = {}
        self.turn: dict[bytes, int] = {}  # client -> when it was last served (a tick)
        self.ticks = itertools.count(1)
        self.queued_by: Counter = Counter()  # client -> requests (slices) in self.queues
        self.secret = b""
        self.nonces: dict[bytes, str] = {}  # worker identity -> challenge for its next ready
        self.stats: dict[str, ModelStats] = {}
        self.totals = Counter()
        self.task_ids = itertools.count(1)
        self.local: list[dict[str, Any]] = []
        self.stop_event = threading.Event()
        self.started = time.monotonic()
        self.endpoint = self.worker_endpoint = ""
        self.fatal: str | None = None
        self.ready_announced = False
        self._last_check = 0.0

    # ------------------------------------------------------------------------ set-up

    def _bind(self, sock: zmq.Socket, endpoint: str, what: str) -> str:
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as error:
            raise GenjsccError(f"cannot bind the {what} endpoint {endpoint}: {error}") from error
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def start(self) -> None:
        """Bind both sockets and start the local workers."""
        curve = None
        if self.cfg.curve_keys:
            from genjscc.serve.security import make_curve_server, start_authenticator

            self.auth, public, secret = start_authenticator(self.ctx, self.cfg.curve_keys)
            curve = (make_curve_server, public, secret)
        limit = self.cfg.limits.max_array_bytes + self.cfg.limits.max_header_bytes
        for name in ("frontend", "backend"):
            sock = self.ctx.socket(zmq.ROUTER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.ROUTER_MANDATORY, 0)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.setsockopt(zmq.RCVHWM, 100_000)
            sock.setsockopt(zmq.MAXMSGSIZE, limit)
            if name == "backend":
                sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            if curve is not None:
                curve[0](sock, curve[1], curve[2])
            setattr(self, name, sock)
        self.secret = (read_worker_secret(self.cfg.worker_secret) if self.cfg.worker_secret
                       else os.urandom(32))  # without a file: only our local workers know it
        worker_bind = self.cfg.worker_bind or default_worker_bind(
            self.cfg.bind, loopback=not self.cfg.curve_keys)
        self.endpoint = self._bind(self.frontend, self.cfg.bind, "client")
        self.worker_endpoint = self._bind(self.backend, worker_bind, "worker")
        if not self.cfg.curve_keys and not (is_loopback(self.endpoint)
                                            and is_loopback(self.worker_endpoint)):
            workers = ("workers must prove the --worker-secret" if self.cfg.worker_secret
                       else "only local workers can join (give remote ones --worker-secret)")
            self.log(f"WARNING: client endpoint {self.endpoint} and worker endpoint "
                     f"{self.worker_endpoint} are neither encrypted nor authenticated "
                     f"(CurveZMQ is off); {workers}; use --curve-keys DIR on a network "
                     "others share (see docs/protocol.md)")
        for _ in range(self.cfg.workers):
            self.local.append({"proc": self._spawn(), "respawn_at": None})

    def _spawn(self) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "genjscc.serve.worker",
               "--connect", _connectable(self.worker_endpoint), "--device", self.cfg.device,
               "--threads", str(self.cfg.threads), "--parent-pid", str(os.getpid())]
        for spec in self.cfg.models:
            cmd += ["--model", spec]
        if self.cfg.curve_keys:
            cmd += ["--curve-keys", str(self.cfg.curve_keys)]
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(self.cfg.threads))
        env[WORKER_SECRET_ENV] = self.secret.hex()  # not in argv: other users see argv
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env)

    def close(self) -> None:
        """Stop local workers and close the sockets."""
        for entry in self.local:
            proc = entry["proc"]
            if proc is not None and proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5.0
        for entry in self.local:
            proc = entry["proc"]
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sock in (self.frontend, self.backend):
            if sock is not None:
                sock.close(0)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()

    # ------------------------------------------------------------------------- loop

    def run(self) -> None:
        """Serve until :attr:`stop_event` is set; GenjsccError if the workers cannot start."""
        poller = zmq.Poller()
        poller.register(self.frontend, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        while not self.stop_event.is_set():
            events = dict(poller.poll(self._timeout_ms()))
            now = time.monotonic()
            if self.backend in events:
                self._drain(self.backend, self._on_worker)
            if self.frontend in events:
                self._drain(self.frontend, self._on_client)
            now = time.monotonic()
            if now - self._last_check >= 0.1:
                self._last_check = now
                self._housekeeping(now)
            if self.fatal is not None:
                raise GenjsccError(self.fatal)
            self._schedule(time.monotonic())
            self._announce()

    def _drain(self, sock: zmq.Socket, handler) -> None:
        # a bounded batch: a flood of (refused) messages must not keep the loop from
        # scheduling the requests it has accepted (ZeroMQ reads the clients in turn)
        for _ in range(DRAIN_BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                handler(frames)
            except Exception as error:  # a bug or a message nobody foresaw: log, keep serving
                self.totals["internal_errors"] += 1
                if self.totals["internal_errors"] <= 10:
                    import traceback

                    self.log(f"ignored a message after {type(error).__name__}: {error}\n"
                             + traceback.format_exc(limit=4))

    def _timeout_ms(self) -> int:
        wait = 0.1
        if self.cfg.max_batch > 1 and any(w.task is None for w in self.workers.values()):
            delay = self.cfg.max_delay_ms / 1000.0
            now = time.monotonic()
            for queue in self.queues.values():
                head = queue.oldest() if queue else None
                if head is not None and head.merge:
                    wait = min(wait, max(0.0, head.arrival + delay - now))
        return max(0, int(wait * 1000 + 0.999))

    def _announce(self) -> None:
        if self.ready_announced:
            return
        ready = [w for w in self.workers.values() if w.models]
        if len(ready) >= self.cfg.workers:
            self.ready_announced = True
            models = sorted({m for w in ready for m in w.models}) or self.cfg.models
            self.log(f"ready on {self.endpoint} (workers connect to {self.worker_endpoint}); "
                     f"models: {', '.join(models) or 'none yet'}; {len(ready)} worker(s)")

    # ---------------------------------------------------------------------- clients

    def _reply(self, envelope: list, frames: list) -> None:
        with contextlib.suppress(zmq.ZMQError):  # the client is gone
            self.frontend.send_multipart([*envelope, *frames], copy=False)

    def _error(self, envelope: list, request_id: Any, code: str, message: str,
               model: str | None = None) -> None:
        self.totals["errors"] += 1
        if model in self.stats:
            self.stats[model].errors += 1
        self._reply(envelope, P.reply_error(request_id, code, message))

    def _on_client(self, frames: list) -> None:
        self.totals["received"] += 1
        now = time.monotonic()
        if len(frames) >= 2 and len(frames[1]) == 0:
            envelope, body = frames[:2], frames[2:]  # a REQ client: identity, empty delimiter
        else:
            envelope, body = frames[:1], frames[1:]
        try:
            header = P.parse_request(body, self.cfg.limits)
        except P.ProtocolError as error:
            self._error(envelope, P.safe_id(body[0]) if body else None, error.code, str(error))
            return
        op = header["op"]
        if op in BROKER_OPS:
            self.totals["requests"] += 1
            self._reply(envelope, P.reply_ok(header["id"], getattr(self, f"_op_{op}")()))
            return
        model = header.get("model")
        if model is None:
            self._error(envelope, header["id"], "bad_request", f"op {op!r} needs a 'model'")
            return
        self.totals["requests"] += 1
        pending = Pending(envelope, body, header, now)
        if self._queued() >= self.cfg.max_queue:
            self._error(envelope, header["id"], "busy", f"the server holds "
                        f"{self.cfg.max_queue} queued requests; retry later", model)
            return
        if self.queued_by[pending.client] >= self.cfg.max_client_queue:
            self._error(envelope, header["id"], "busy", f"this client has "
                        f"{self.cfg.max_client_queue} requests queued already; wait for "
                        "their replies (--max-client-queue)", model)
            return
        self._route(pending)

    def _describe(self, model: str) -> dict[str, Any] | None:
        for w in self.workers.values():
            if model in w.models:
                return w.models[model]
        return None

    def _queued(self) -> int:
        return (sum(len(q) for q in self.queues.values())
                + sum(len(q) for q in self.waiting.values())
                + sum(len(w.pinned) for w in self.workers.values()))

    def _route(self, p: Pending) -> None:
        """Put a request in the queue it belongs to (or answer it with an error)."""
        desc = self._describe(p.model)
        request_id = p.header["id"]
        if desc is None:
            if p.model in self.cfg.models:
                self.waiting.setdefault(p.model, deque()).append(p)  # workers still starting
                return
            served = sorted({m for w in self.workers.values() for m in w.models})
            self._error(p.envelope, request_id, "unknown_model",
                        f"this server does not serve {p.model!r}; it serves "
                        f"{', '.join(served) or 'nothing yet'}")
            return
        op = desc["ops"].get(p.op)
        if op is None:
            self._error(p.envelope, request_id, "unknown_op", f"model {p.model!r} has no op "
                        f"{p.op!r}; it has {', '.join(desc['ops'])}", p.model)
            return
        expected = p.header.get("sha256")
        if expected is not None and expected != desc["sha256"]:
            self._error(p.envelope, request_id, "weights_mismatch",
                        f"model {p.model!r}: the server's weights have sha256 "
                        f"{desc['sha256'][:16]}..., the client expects {expected[:16]}...; "
                        "both sides must use identical weights", p.model)
            return
        if p.parent is None and not p.attempts:
            p.cost = _cost_ms(p, op)
            if p.cost > self.cfg.max_request_ms:
                per_row = p.cost / max(1, p.rows)
                self._error(p.envelope, request_id, "too_large", f"this request is estimated "
                            f"at {p.cost:.0f} ms of work ({p.rows} rows x {per_row:.3g} ms); "
                            f"the server takes at most {self.cfg.max_request_ms:g} ms per "
                            f"request: send at most {int(self.cfg.max_request_ms // per_row)} "
                            "rows at a time", p.model)
                return
            if op.get("merge") and p.cost > self.cfg.slice_ms and p.rows > 1:
                for part in self._slices(p):
                    self._route(part)
                return
        if op.get("session") in ("use", "end"):
            sid = (p.header.get("params") or {}).get("session")
            owner = self.sessions.get(sid) if isinstance(sid, str) else None
            if owner is None:
                self._error(p.envelope, request_id, "unknown_session",
                            f"unknown LM session {sid!r} (expired, closed, or the server or "
                            "its worker restarted): start again", p.model)
                return
            p.session = sid
            self.session_used[sid] = p.arrival
            owner.pinned.append(p)
            return
        p.merge = bool(op.get("merge")) and self.cfg.max_batch > 1
        if p.merge:
            arrays = p.header.get("arrays") or []
            p.key = (p.model, p.op, P.canonical_params(p.header.get("params") or {}),
                     tuple((a["dtype"], tuple(a["shape"][1:])) for a in arrays),
                     all(a["shape"] for a in arrays) and bool(arrays))
        else:
            p.key = (p.model, p.op)
        self._enqueue(p)

    def _enqueue(self, p: Pending, front: bool = False) -> None:
        self.queues.setdefault(p.key, FairQueue()).append(p, front)
        if p.client not in self.turn:  # a client that had nothing queued waits its turn
            self.turn[p.client] = next(self.ticks)
        self.queued_by[p.client] += 1

    def _dequeued(self, p: Pending) -> None:
        self.queued_by[p.client] -= 1
        if self.queued_by[p.client] <= 0:
            del self.queued_by[p.client]
            self.turn.pop(p.client, None)

    def _slices(self, p: Pending) -> list[Pending]:
        """``p`` cut along axis 0 into slices of at most ``slice_ms`` of work each."""
        specs = p.header.get("arrays") or []
        if not specs or any(not a["shape"] or a["shape"][0] != p.rows for a in specs):
            return [p]  # no common batch axis: the worker refuses it
        step = max(1, int(self.cfg.slice_ms // (p.cost / p.rows)))
        starts = range(0, p.rows, step)
        parent = Sliced(p, len(starts))
        row_bytes = [P.DTYPES[a["dtype"]].itemsize * math.prod(a["shape"][1:]) for a in specs]
        out = []
        for k, start in enumerate(starts):
            stop = min(p.rows, start + step)
            header = {**p.header, "arrays": [{"dtype": a["dtype"],
                                              "shape": [stop - start, *a["shape"][1:]]}
                                             for a in specs]}
            frames = [json.dumps(header).encode()]
            for frame, size in zip(p.frames[1:], row_bytes, strict=True):
                frames.append(P.frame_bytes(frame)[start * size:stop * size])
            part = Pending(p.envelope, frames, header, p.arrival)
            part.deadline, part.attempts = p.deadline, p.attempts
            part.cost, part.parent, part.part = p.cost * (stop - start) / p.rows, parent, k
            out.append(part)
        return out

    # ----------------------------------------------------------------------- batching

    def _schedule(self, now: float) -> None:
        delay = self.cfg.max_delay_ms / 1000.0
        # While every worker is idle, waiting for a fuller batch only adds latency: dispatch
        # what is queued at once. Requests that arrive while workers are busy queue up and
        # go out together (continuous batching); max_delay_ms bounds the wait of an idle
        # worker beside busy ones.
        busy = any(w.task is not None for w in self.workers.values())
        for w in self.workers.values():
            if w.task is not None or not w.models:
                continue
            if w.pinned:
                batch = [w.pinned.popleft() for _ in range(min(len(w.pinned),
                                                               self.cfg.max_batch))]
                self._dispatch(w, batch, merge=False, now=now)
                continue
            best = self._next_queue(w, now, delay, busy)
            if best is None:
                continue
            batch = self._take(self.queues[best], now)
            if not self.queues[best]:
                del self.queues[best]
            if batch:
                self._dispatch(w, batch, merge=batch[0].merge, now=now)
                busy = True

    def _next_queue(self, w: WorkerState, now: float, delay: float, busy: bool) -> tuple | None:
        """The ready queue of a model ``w`` serves holding the client whose turn it is (the
        one served longest ago), so no client waits behind another's backlog."""
        best, best_rank = None, None
        for key, queue in self.queues.items():
            if not queue or key[0] not in w.models:
                continue
            head = queue.oldest()
            ready = (not head.merge or not busy or len(queue) >= self.cfg.max_batch
                     or now >= head.arrival + delay)
            if not ready:
                continue
            rank = (min(self.turn.get(c, 0) for c in queue.by_client), head.arrival)
            if best_rank is None or rank < best_rank:
                best, best_rank = key, rank
        return best

    def _take(self, queue: FairQueue, now: float) -> list[Pending]:
        """A batch from ``queue``: clients in turn, at most ``max_batch`` requests, and at most
        ``slice_ms`` of work (or one request) so that a task holds its worker briefly."""
        batch, rows, cost = [], 0, 0.0
        while queue and len(batch) < self.cfg.max_batch:
            client = min(queue.by_client, key=lambda c: self.turn.get(c, 0))
            head = queue.by_client[client][0]
            if batch and (rows + head.rows > MAX_BATCH_ROWS
                          or cost + head.cost > self.cfg.slice_ms):
                break
            p = queue.pop(client)
            self._dequeued(p)
            if client in self.turn:
                self.turn[client] = next(self.ticks)
            if p.parent is not None and p.parent.done:
                continue  # another slice of its request failed: the client has its reply
            if now > p.deadline:
                self._fail(p, "expired", "the request waited longer than its timeout_ms")
                continue
            batch.append(p)
            rows += p.rows
            cost += p.cost
        return batch

    def _dispatch(self, w: WorkerState, batch: list[Pending], merge: bool, now: float) -> None:
        for p in batch:
            desc = w.models.get(p.model, {})
            if desc.get("ops", {}).get(p.op, {}).get("session") == "start":
                sid = uuid.uuid4().hex
                header = dict(p.header)
                header["params"] = {**(header.get("params") or {}), "session": sid}
                p.frames = [json.dumps(header).encode(), *p.frames[1:]]
                self.sessions[sid] = w
                self.session_used[sid] = now
                w.sessions.add(sid)
            elif desc.get("ops", {}).get(p.op, {}).get("session") == "end":
                self.sessions.pop(p.session, None)
                self.session_used.pop(p.session, None)
                w.sessions.discard(p.session)
        task = next(self.task_ids)
        items = [{"tag": i, "frames": len(p.frames)} for i, p in enumerate(batch)]
        control = {"type": "task", "task": task, "merge": merge, "items": items}
        frames = [w.wid, *P.worker_message(control, [f for p in batch for f in p.frames])]
        try:
            self.backend.send_multipart(frames, copy=False)
        except zmq.ZMQError as error:
            self.log(f"cannot send a task to worker {w.wid.decode()}: {error}")
            self._drop_worker(w, "unreachable")
            return
        w.task, w.items = task, batch
        for model in {p.model for p in batch}:
            stats = self.stats.setdefault(model, ModelStats())
            stats.batches += 1
            stats.batch_sizes[sum(p.model == model for p in batch)] += 1

    # ------------------------------------------------------------------------ workers

    def _send_worker(self, wid: bytes, message: dict[str, Any]) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.backend.send_multipart([wid, *P.worker_message(message)])

    def _on_worker(self, frames: list) -> None:
        ident = bytes(frames[0].buffer)
        msg = P.parse_worker_message(frames[1:])
        if msg is None:
            return
        kind = msg.get("type")
        now = time.monotonic()
        if kind == "heartbeat":
            wid = str(msg.get("worker", "")).encode()
            w = self.workers.get(wid)
            if w is not None:
                w.last_seen = now
            elif wid.startswith(b"w-"):
                self._reset(wid)
            return
        w = self.workers.get(ident)
        if w is not None:
            w.last_seen = now
        if kind == "hello":
            self._send_worker(ident, {"type": "config", "models": self.cfg.models,
                                      "nonce": self._nonce(ident)})
        elif kind == "ready":
            if self._proven(ident, msg):
                self._register(ident, msg, now)
        elif kind == "done":
            if w is None:
                self._reset(ident)
            elif msg.get("task") == w.task:
                self._complete(w, msg, frames[3:], now)
        elif kind == "fatal" and self._proven(ident, msg):
            text = str(msg.get("message", "a worker failed"))
            if not self.ready_announced and self.cfg.workers:
                self.fatal = text  # the server stops with this one line
            else:
                self.log(f"worker {ident.decode(errors='replace')} cannot start: {text}")
        elif kind == "bye" and w is not None:
            self._drop_worker(w, "left")

    def _nonce(self, ident: bytes) -> str:
        """The challenge of worker ``ident``: the one it was sent already (a worker that said
        hello twice, or got several resets, proves any of them; the routing identity binds it
        to that connection), else a new one (4096 at most are remembered; a refused or
        dropped worker gets a new one)."""
        if ident not in self.nonces:
            if len(self.nonces) >= 4096:
                self.nonces.pop(next(iter(self.nonces)))
            self.nonces[ident] = os.urandom(16).hex()
        return self.nonces[ident]

    def _reset(self, ident: bytes) -> None:
        """Ask an unknown worker to register again (with a new challenge)."""
        self._send_worker(ident, {"type": "reset", "nonce": self._nonce(ident)})

    def _proven(self, ident: bytes, msg: dict[str, Any]) -> bool:
        """Whether ``msg`` carries the worker secret's proof for this worker's challenge
        (always true with CurveZMQ and no --worker-secret: the handshake authenticated it)."""
        if self.cfg.curve_keys and not self.cfg.worker_secret:
            return True
        nonce = self.nonces.get(ident)
        proof = msg.get("proof")
        if nonce is not None and isinstance(proof, str) and hmac.compare_digest(
                proof, worker_proof(self.secret, nonce, ident.decode(errors="replace"))):
            return True
        if nonce is None:  # never challenged, or its nonce was evicted: challenge it now
            self._reset(ident)
            return False
        self.nonces.pop(ident, None)
        self.totals["refused_workers"] += 1
        if self.totals["refused_workers"] <= 10:
            self.log(f"refused worker {ident.decode(errors='replace')[:40]!r}: it did not "
                     "prove the worker secret (--worker-secret FILE, the broker's)")
        self._send_worker(ident, {"type": "stop", "reason": "the broker refused this worker: "
                                  "wrong or missing --worker-secret (give the worker the "
                                  "broker's file)"})
        return False

    def _register(self, ident: bytes, msg: dict[str, Any], now: float) -> None:
        models = {}
        descs = msg.get("models")
        for desc in descs if isinstance(descs, list) else []:
            if not _valid_description(desc):
                self.log(f"worker {ident.decode(errors='replace')} sent an invalid model "
                         "description; ignored")
                continue
            known = self._describe(desc["name"])
            if known is not None and self.workers.get(ident, None) is None and (
                    known["sha256"] != desc.get("sha256")
                    or (known["kind"] == "lm" and known["device"] != desc.get("device"))):
                reason = (f"model {desc['name']!r} of this worker (sha256 "
                          f"{str(desc.get('sha256'))[:16]}..., {desc.get('device')}) differs "
                          f"from the one already served ({known['sha256'][:16]}..., "
                          f"{known['device']}): every worker must serve identical weights")
                self.log(f"refused worker {ident.decode(errors='replace')}: {reason}")
                self._send_worker(ident, {"type": "stop", "reason": reason})
                return
            models[desc["name"]] = desc
        w = self.workers.get(ident)
        if w is None:
            w = self.workers[ident] = WorkerState(ident, models, now)
            if self.ready_announced or self.cfg.workers == 0:
                self.log(f"worker {ident.decode()} ({msg.get('host')}, pid {msg.get('pid')}) "
                         f"joined: {', '.join(models)}")
        else:
            w.models = models
        w.pid, w.host = msg.get("pid"), str(msg.get("host", ""))
        for name in models:
            self.stats.setdefault(name, ModelStats())
            for p in self.waiting.pop(name, deque()):
                self._route(p)

    def _complete(self, w: WorkerState, msg: dict[str, Any], frames: list, now: float) -> None:
        items, pos = msg.get("items"), 0
        batch = w.items
        for item in items if isinstance(items, list) else []:
            count = item.get("frames") if isinstance(item, dict) else None
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                break
            reply = frames[pos:pos + count]
            pos += count
            tag = item.get("tag")
            if not isinstance(tag, int) or not 0 <= tag < len(batch) or not reply:
                continue
            p = batch[tag]
            if p is None:
                continue  # a second reply for the same request
            batch[tag] = None
            if p.parent is not None:
                self._part_done(p, reply, now)
                continue
            stats = self.stats.setdefault(p.model, ModelStats())
            stats.requests += 1
            stats.rows += p.rows
            stats.latency.append(now - p.arrival)
            if P.reply_is_error(reply[0]):
                stats.errors += 1
                self.totals["errors"] += 1
            self._reply(p.envelope, reply)
        for p in batch:  # requests the worker did not answer still get a reply
            if p is not None:
                self._fail(p, "internal", "the worker returned no reply for this request")
        w.task, w.items = None, []
        w.tasks_done += 1

    def _part_done(self, p: Pending, reply: list, now: float) -> None:
        """One slice's reply: kept until every slice has one, then joined into one reply."""
        parent = p.parent
        if parent is None or parent.done:
            return
        try:
            header, arrays = P.parse_reply(reply, self.cfg.limits)
        except P.ProtocolError as error:
            self._fail(p, "internal", f"a worker's reply to a slice is malformed: {error}")
            return
        if not header["ok"]:
            parent.done = True
            self.totals["errors"] += 1
            self.stats.setdefault(p.model, ModelStats()).errors += 1
            self._reply(p.envelope, reply)
            return
        parent.parts[p.part] = (header.get("result") or {}, arrays)
        if any(part is None for part in parent.parts):
            return
        parent.done = True
        request = parent.request
        try:
            joined = [np.concatenate([part[1][j] for part in parent.parts])
                      for j in range(len(parent.parts[0][1]))]
        except ValueError as error:  # slices answered with different layouts: a worker bug
            self._fail(p, "internal", f"cannot join the slices' replies: {error}")
            return
        stats = self.stats.setdefault(request.model, ModelStats())
        stats.requests += 1
        stats.rows += request.rows
        stats.latency.append(now - request.arrival)
        self._reply(request.envelope, P.reply_ok(request.header["id"], parent.parts[0][0],
                                                 joined))

    def _fail(self, p: Pending, code: str, message: str) -> None:
        """Answer ``p`` (or the request it is a slice of, once) with an error."""
        if p.parent is not None:
            if p.parent.done:
                return
            p.parent.done = True
        self._error(p.envelope, p.header["id"], code, message, p.model)

    def _drop_worker(self, w: WorkerState, why: str) -> None:
        self.workers.pop(w.wid, None)
        self.nonces.pop(w.wid, None)
        self.log(f"worker {w.wid.decode(errors='replace')} {why}; "
                 f"{len(w.items)} request(s) in flight")
        for sid in w.sessions:
            self.sessions.pop(sid, None)
            self.session_used.pop(sid, None)
        lost = list(w.pinned)
        for p in w.items:
            op = w.models.get(p.model, {}).get("ops", {}).get(p.op, {})
            p.attempts += 1
            if op.get("session") in ("use", "end") or p.attempts > 2:
                lost.append(p)
            else:
                self._route_front(p)
        for p in lost:
            self._fail(p, "worker_lost", f"the worker running this request {why}; LM "
                       "sessions on it are gone")

    def _route_front(self, p: Pending) -> None:
        if p.parent is not None and p.parent.done:
            return
        self._route(p)
        queue = self.queues.get(p.key)
        mine = queue.by_client.get(p.client) if queue is not None else None
        if mine and mine[-1] is p:
            mine.rotate(1)  # retried work goes first

    def _housekeeping(self, now: float) -> None:
        for w in list(self.workers.values()):
            if now - w.last_seen > WORKER_TIMEOUT_S:
                self._drop_worker(w, f"sent nothing for {WORKER_TIMEOUT_S:g} s")
        for key in list(self.queues):
            for p in self.queues[key].expired(now):
                self._dequeued(p)
                self._fail(p, "expired", "the request waited longer than its timeout_ms")
            if not self.queues[key]:
                del self.queues[key]
        for key in list(self.waiting):
            queue = self.waiting[key]
            while queue and now > queue[0].deadline:
                p = queue.popleft()
                self._fail(p, "no_worker", "the request waited longer than its timeout_ms "
                           f"for a worker serving {p.model!r}")
            if not queue:
                del self.waiting[key]
        for sid in [s for s, t in self.session_used.items() if now - t > SESSION_IDLE_S]:
            owner = self.sessions.pop(sid, None)
            del self.session_used[sid]
            if owner is not None:
                owner.sessions.discard(sid)  # the worker expires it too (LM_SESSION_TTL_S)
        for entry in self.local:
            proc = entry["proc"]
            if self.stop_event.is_set() or proc.poll() is None:
                continue
            if proc.returncode == 2:
                continue  # it could not load its models (logged): restarting would not help
            if entry["respawn_at"] is None:
                entry["respawn_at"] = now + RESPAWN_DELAY_S
                if self.fatal is None:
                    self.log(f"local worker pid {proc.pid} exited with status "
                             f"{proc.returncode}; restarting it")
                here = socket.gethostname()
                for w in [w for w in self.workers.values()
                          if w.pid == proc.pid and w.host == here]:
                    self._drop_worker(w, "exited")  # no need to wait for its heartbeat
            elif now >= entry["respawn_at"] and self.fatal is None:
                entry["proc"], entry["respawn_at"] = self._spawn(), None

    # ----------------------------------------------------------------------- broker ops

    def _op_health(self) -> dict[str, Any]:
        from genjscc import __version__

        alive = [w for w in self.workers.values() if w.models]
        models = sorted({m for w in alive for m in w.models})
        status = "ok" if alive else ("starting" if not self.ready_announced else "no_workers")
        return {"status": status, "protocol": P.VERSION, "version": __version__,
                "uptime_s": round(time.monotonic() - self.started, 3), "workers": len(alive),
                "models": models, "queued": self._queued()}

    def _op_models(self) -> dict[str, Any]:
        out: dict[str, dict[str, Any]] = {}
        for w in self.workers.values():
            for name, desc in w.models.items():
                entry = out.setdefault(name, {**desc, "workers": 0})
                entry["workers"] += 1
        return {"models": list(out.values()), "limits": self._limits()}

    def _limits(self) -> dict[str, Any]:
        """The limits a client sizes its requests by (docs/protocol.md, Limits)."""
        return {"max_request_ms": self.cfg.max_request_ms, "slice_ms": self.cfg.slice_ms,
                "max_queue": self.cfg.max_queue, "max_client_queue": self.cfg.max_client_queue}

    def _op_stats(self) -> dict[str, Any]:
        workers = [{"id": w.wid.decode(errors="replace")[:10], "host": w.host, "pid": w.pid,
                    "busy": w.task is not None, "tasks_done": w.tasks_done,
                    "sessions": len(w.sessions), "models": sorted(w.models)}
                   for w in self.workers.values()]
        return {"uptime_s": round(time.monotonic() - self.started, 3),
                "received": self.totals["received"], "requests": self.totals["requests"],
                "errors": self.totals["errors"], "queued": self._queued(),
                "max_batch": self.cfg.max_batch, "max_delay_ms": self.cfg.max_delay_ms,
                "limits": self._limits(), "refused_workers": self.totals["refused_workers"],
                "workers": workers,
                "models": {name: s.report() for name, s in self.stats.items()}}


def _cost_ms(p: Pending, op: dict[str, Any]) -> float:
    """Estimated ms of work of request ``p`` for op description ``op`` (its ``cost``: ms per
    value of the first array, times a params value such as ``num_iters``); 0 without one."""
    cost = op.get("cost")
    if not isinstance(cost, dict):
        return 0.0
    arrays = p.header.get("arrays") or []
    values = math.prod(arrays[0]["shape"]) if arrays else 0
    scale = 1
    if isinstance(cost.get("scale"), str):
        scale = (p.header.get("params") or {}).get(cost["scale"], cost.get("scale_default", 1))
        if isinstance(scale, bool) or not isinstance(scale, int):
            scale = cost.get("scale_default", 1)  # the worker refuses it; count the default
        scale = min(max(1, scale), 1 << 40)  # a JSON int may have 400 digits: no overflow
    return values * cost["ms_per_value"] * scale


def serve(config: ServeConfig, stop_event: threading.Event | None = None) -> None:
    """Run a broker with its local workers until ``stop_event`` is set (or SIGINT/SIGTERM when
    called from the main thread)."""
    import signal

    broker = Broker(config)
    if stop_event is not None:
        broker.stop_event = stop_event
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: broker.stop_event.set())
    try:
        broker.start()
        broker.run()
    finally:
        broker.close()
