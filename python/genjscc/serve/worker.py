"""A worker of ``genjscc serve``: loads the models and runs the batches the broker sends.

Workers connect to the broker's worker endpoint (a ZeroMQ DEALER to its ROUTER), either as
local processes that ``genjscc serve --workers N`` starts, or from other hosts with
``genjscc serve --worker --connect tcp://BROKER:PORT``: that is how serving grows past one
machine. A worker without ``--models`` asks the broker which models to load.

Broker <-> worker messages (all start with the frame ``GJW1`` and a JSON frame ``type``):

* worker -> broker: ``hello`` (asks for the model list and a one-time nonce), ``ready``
  (models loaded, with their descriptions, sha256 and the ``proof`` of the worker secret for
  the nonce), ``done`` (a task's replies), ``fatal`` (cannot load; exits; with a proof),
  and ``heartbeat`` every 0.5 s from a second socket, so a worker busy with a long batch still
  counts as alive and a dead one is noticed within 2 s;
* broker -> worker: ``config`` (models to load, nonce), ``task`` (requests to run), ``reset``
  (the broker does not know this worker, e.g. after a broker restart: send ``ready`` again,
  proving the reset's nonce), ``stop``.

A task's frames are, per request, the client's header frame and array frames; the ``done``
message carries, per request, the reply frames the broker forwards to the client unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from typing import Any

import numpy as np
import zmq

from genjscc.errors import GenjsccError
from genjscc.serve import protocol as P
from genjscc.serve.registry import OpError, Servable, load_servable

HEARTBEAT_S = 0.5


def _send(sock: zmq.Socket, message: dict[str, Any], frames: list | None = None) -> None:
    sock.send_multipart(P.worker_message(message, frames or ()), copy=False)


def apply_curve_client(sock: zmq.Socket, keys_dir: str | None) -> None:
    """Make ``sock`` a CurveZMQ client with the keys of ``keys_dir`` (see security.py)."""
    if keys_dir:
        from genjscc.serve.security import client_keys

        public, secret, server_public = client_keys(keys_dir)
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = server_public


class Worker:
    """One worker process (see the module docstring).

    Args:
        connect: the broker's worker endpoint, e.g. ``tcp://127.0.0.1:5556``.
        models: model specs to load (None: ask the broker).
        device: ``cpu`` or ``cuda[:N]``.
        threads: torch intra-op threads for batched ops (LM sessions use their own count).
        curve_keys: directory with CurveZMQ keys (``genjscc serve --gen-keys``), or None.
        parent_pid: exit when this process is no longer our parent (local workers).
        secret: the broker's worker secret (``--worker-secret FILE``; local workers get it
            from the broker in ``GENJSCC_WORKER_SECRET``), or None (CurveZMQ only).
    """

    def __init__(self, connect: str, models: list[str] | None = None, device: str = "cpu",
                 threads: int = 1, curve_keys: str | None = None,
                 parent_pid: int | None = None, limits: P.Limits = P.DEFAULT_LIMITS,
                 secret: bytes | None = None) -> None:
        self.connect, self.models_wanted, self.device = connect, models, device
        self.threads, self.curve_keys, self.parent_pid = threads, curve_keys, parent_pid
        self.limits = limits
        self.secret = secret or b""
        self.nonce = ""
        self.wid = f"w-{uuid.uuid4().hex[:16]}"
        self.servables: dict[str, Servable] = {}
        self.ctx = zmq.Context()
        self.stop = threading.Event()

    def _socket(self, identity: str) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, identity.encode())
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        apply_curve_client(sock, self.curve_keys)
        sock.connect(self.connect)
        return sock

    def _heartbeat(self) -> None:
        sock = self._socket("h-" + self.wid[2:])
        try:
            while not self.stop.wait(HEARTBEAT_S):
                if self.parent_pid is not None and os.getppid() != self.parent_pid:
                    self.stop.set()  # the server that started us is gone
                    break
                with contextlib.suppress(zmq.ZMQError):
                    _send(sock, {"type": "heartbeat", "worker": self.wid}, [])
        finally:
            sock.close(0)

    def _wait_config(self, sock: zmq.Socket) -> list[str]:
        """Ask the broker for the model list (and a nonce to prove the secret with) until it
        answers."""
        while not self.stop.is_set():
            _send(sock, {"type": "hello", "worker": self.wid})
            if sock.poll(1000):
                frames = sock.recv_multipart()
                msg = P.parse_worker_message(frames)
                if msg is not None and msg.get("type") == "config":
                    models = msg.get("models")
                    self.nonce = str(msg.get("nonce", ""))
                    if isinstance(models, list) and all(isinstance(m, str) for m in models):
                        return models
        return []

    def _proof(self) -> str:
        from genjscc.serve.security import worker_proof

        return worker_proof(self.secret, self.nonce, self.wid)

    def run(self) -> int:
        """Serve until stopped; returns the process exit status."""
        import torch

        torch.set_num_threads(self.threads)
        sock = self._socket(self.wid)
        beat = threading.Thread(target=self._heartbeat, name="genjscc-heartbeat", daemon=True)
        beat.start()
        try:
            specs = self._wait_config(sock)  # the nonce too, with --models given
            specs = self.models_wanted or specs
            try:
                for spec in specs:
                    servable = load_servable(spec, self.device)
                    self.servables[servable.name] = servable
            except (GenjsccError, ValueError, OSError) as error:
                _send(sock, {"type": "fatal", "worker": self.wid, "message": str(error),
                             "proof": self._proof()})
                time.sleep(0.2)  # let the message leave before the socket closes
                if self.parent_pid is None:  # a local worker's server reports it instead
                    print(f"genjscc serve --worker: {error}", file=sys.stderr)
                return 2
            self._ready(sock)
            while not self.stop.is_set():
                if not sock.poll(200):
                    continue
                frames = sock.recv_multipart(copy=False)
                msg = P.parse_worker_message(frames)
                if msg is None:
                    continue
                if msg.get("type") == "task":
                    try:
                        self._task(sock, msg, frames[2:])
                    except Exception:  # a malformed task: log it, keep serving
                        traceback.print_exc(file=sys.stderr)
                elif msg.get("type") == "reset":
                    self.nonce = str(msg.get("nonce", ""))
                    self._ready(sock)
                elif msg.get("type") == "stop":
                    if msg.get("reason"):
                        print(f"genjscc serve --worker: refused by the broker: "
                              f"{msg['reason']}", file=sys.stderr)
                        return 2
                    break
            return 0
        finally:
            self.stop.set()
            with contextlib.suppress(zmq.ZMQError):
                _send(sock, {"type": "bye", "worker": self.wid})
            sock.close(0)
            beat.join(timeout=2)
            self.ctx.term()

    def _ready(self, sock: zmq.Socket) -> None:
        _send(sock, {"type": "ready", "worker": self.wid, "pid": os.getpid(),
                     "host": socket.gethostname(), "proof": self._proof(),
                     "models": [s.describe() for s in self.servables.values()]})

    # ------------------------------------------------------------------------- tasks

    def _task(self, sock: zmq.Socket, msg: dict[str, Any], frames: list) -> None:
        items = msg.get("items") or []
        requests, pos = [], 0
        for item in items:
            count = int(item.get("frames", 0))
            requests.append((item.get("tag"), frames[pos:pos + count]))
            pos += count
        if msg.get("merge") and len(requests) > 1:
            replies = self._merged(requests)
        else:
            replies = self._pinned(requests)
        out_items, out_frames = [], []
        for (tag, _), reply in zip(requests, replies, strict=True):
            out_items.append({"tag": tag, "frames": len(reply)})
            out_frames.extend(reply)
        _send(sock, {"type": "done", "task": msg.get("task"), "items": out_items}, out_frames)

    def _parse(self, frames: list) -> tuple[dict, list[np.ndarray], Servable, Any]:
        header = P.parse_request(frames, self.limits)
        servable = self.servables.get(header.get("model"))
        if servable is None:
            raise P.ProtocolError("unknown_model", f"this worker does not serve "
                                                   f"{header.get('model')!r}")
        op = servable.ops.get(header["op"])
        if op is None:
            raise P.ProtocolError("unknown_op", f"model {servable.name!r} has no op "
                                                f"{header['op']!r}; it has "
                                                f"{', '.join(servable.ops)}")
        expected = header.get("sha256")
        if expected is not None and expected != servable.sha256:
            raise P.ProtocolError("weights_mismatch", _mismatch(servable, expected))
        return header, P.arrays_of(header, frames[1:]), servable, op

    def _one(self, frames: list) -> list:
        try:
            header, arrays, _, op = self._parse(frames)
        except Exception as error:  # every failure becomes an error reply
            return _error_reply(_frames_id(frames), error)
        return self._answer(header, arrays, op)

    @staticmethod
    def _answer(header: dict, arrays: list[np.ndarray], op: Any) -> list:
        """The reply to one parsed request: ``op.check``, then ``op.call``."""
        try:
            params = header.get("params") or {}
            if op.check is not None:
                op.check(arrays, params)
            out, result = op.call(arrays, params)
            return P.reply_ok(header["id"], result, out)
        except Exception as error:  # every failure becomes an error reply
            return _error_reply(header["id"], error)

    def _pinned(self, requests: list) -> list[list]:
        """Requests sent together but not merged by the broker (session ops), in their order;
        consecutive ones of an op with ``call_many`` (LM steps of several sessions) go to it
        together, so the op can merge what it may."""
        replies: list[list | None] = [None] * len(requests)
        run: list[tuple[int, dict, list[np.ndarray]]] = []
        run_op = None

        def flush() -> None:
            if len(run) == 1:
                replies[run[0][0]] = self._answer(run[0][1], run[0][2], run_op)
            elif run:
                try:
                    outcomes = run_op.call_many([(arrays, header.get("params") or {})
                                                 for _, header, arrays in run])
                except Exception:  # a bug in call_many: fall back, one by one
                    traceback.print_exc(file=sys.stderr)
                    outcomes = [None] * len(run)
                for (i, header, arrays), outcome in zip(run, outcomes, strict=True):
                    if outcome is None:
                        replies[i] = self._answer(header, arrays, run_op)
                    elif isinstance(outcome, Exception):
                        replies[i] = _error_reply(header["id"], outcome)
                    else:
                        replies[i] = P.reply_ok(header["id"], outcome[1], outcome[0])
            run.clear()

        for i, (_, frames) in enumerate(requests):
            try:
                header, arrays, _, op = self._parse(frames)
                if op.call_many is not None and op.check is not None:
                    op.check(arrays, header.get("params") or {})
            except Exception as error:  # this request fails alone
                replies[i] = _error_reply(_frames_id(frames), error)
                continue
            if op.call_many is None or (run and op is not run_op):
                flush()
            if op.call_many is None:
                replies[i] = self._answer(header, arrays, op)
            else:
                run_op = op
                run.append((i, header, arrays))
        flush()
        return [r if r is not None else P.reply_error(None, "internal", "no reply")
                for r in replies]

    def _merged(self, requests: list) -> list[list]:
        """Concatenate compatible requests along axis 0, call once, split the outputs."""
        replies: list[list | None] = [None] * len(requests)
        good: list[tuple[int, dict, list[np.ndarray]]] = []
        op = None
        for i, (_, frames) in enumerate(requests):
            try:
                header, arrays, _, op_i = self._parse(frames)
                params = header.get("params") or {}
                if op_i.check is not None:
                    op_i.check(arrays, params)
                if not arrays or any(a.ndim == 0 for a in arrays):
                    raise ValueError("batched ops take arrays with a batch dimension")
                op = op_i
                good.append((i, header, arrays))
            except Exception as error:
                replies[i] = _error_reply(_frames_id(frames), error)
        if good and op is not None:
            try:
                rows = [arrays[0].shape[0] for _, _, arrays in good]
                merged = [np.concatenate([arrays[j] for _, _, arrays in good])
                          for j in range(len(good[0][2]))]
                out, result = op.call(merged, good[0][1].get("params") or {})
                total = sum(rows)
                if any(o.ndim == 0 or o.shape[0] != total for o in out):
                    raise RuntimeError("a batched op returned arrays without the batch rows")
                bounds = np.cumsum([0, *rows])
                for k, (i, header, _) in enumerate(good):
                    part = [o[bounds[k]:bounds[k + 1]] for o in out]
                    replies[i] = P.reply_ok(header["id"], result, part)
            except Exception:
                # one request may have broken the batch: run them one by one so only it fails
                for i, _, _ in good:
                    replies[i] = self._one(requests[i][1])
        return [r if r is not None else P.reply_error(None, "internal", "no reply")
                for r in replies]


def _mismatch(servable: Servable, expected: str) -> str:
    return (f"model {servable.name!r}: the server's weights have sha256 "
            f"{servable.sha256[:16]}..., the client expects {expected[:16]}...; both sides "
            "must use identical weights (LM coding needs identical probabilities)")


def _frames_id(frames: list) -> Any:
    """The request id of frames that failed to parse, if readable (else None)."""
    return P.safe_id(frames[0]) if frames else None


def _error_reply(request_id: Any, error: Exception) -> list:
    if isinstance(error, P.ProtocolError | OpError):
        return P.reply_error(request_id, error.code, str(error))
    if isinstance(error, ValueError | TypeError | GenjsccError):
        return P.reply_error(request_id, "invalid_input", str(error))
    traceback.print_exc(file=sys.stderr)
    return P.reply_error(request_id, "internal", f"{type(error).__name__}: {error}")


def worker_secret(path: str | None) -> bytes | None:
    """The secret of ``--worker-secret FILE``, else of ``GENJSCC_WORKER_SECRET`` (hex: how a
    broker hands its secret to the local workers it starts), else None."""
    if path:
        from genjscc.serve.security import read_worker_secret

        return read_worker_secret(path)
    text = os.environ.get("GENJSCC_WORKER_SECRET", "")
    try:
        return bytes.fromhex(text) if text else None
    except ValueError:
        raise GenjsccError("GENJSCC_WORKER_SECRET must be hex") from None


def set_parent_death_signal() -> None:
    """Linux: have the kernel SIGTERM this process when its parent dies (local workers of a
    server that was killed must not live on). A no-op elsewhere."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m genjscc.serve.worker --connect ENDPOINT ...`` (what local workers run)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connect", required=True)
    ap.add_argument("--models", default=None, help="comma-separated model specs")
    ap.add_argument("--model", action="append", default=[], help="one model spec (repeatable)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--curve-keys", default=None)
    ap.add_argument("--parent-pid", type=int, default=None)
    ap.add_argument("--worker-secret", default=None, metavar="FILE")
    args = ap.parse_args(argv)
    if args.parent_pid is not None:
        set_parent_death_signal()
        if os.getppid() != args.parent_pid:
            return 0
    models = [m for m in (args.models or "").split(",") if m.strip()] + args.model or None
    worker = Worker(args.connect, models, args.device, args.threads, args.curve_keys,
                    args.parent_pid, secret=worker_secret(args.worker_secret))
    import signal

    signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
    try:
        return worker.run()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
