"""The ``backend`` parameter of the neural blocks: in-process torch or an inference server.

``backend="local"`` runs the model in the block's process. ``backend="tcp://HOST:PORT"``
sends the same call to ``genjscc serve`` through :mod:`genjscc.serve.client`. A frame whose
server call fails (server down, timeout, error reply, weights mismatch) is never lost and
never stops the flowgraph: the block still emits it, marked in its metadata
(``backend_ok`` #f, ``backend`` ``"failed"`` or ``"local-fallback"``, ``backend_error``: the
error code, ``unavailable`` when no reply came, else the server's code of docs/protocol.md) and
counted in ``num_backend_failures()``; with ``fallback="local"`` the block decodes it with
the local model instead. The client fails fast while the server is down and probes it again
every half second, so frames flow again within about a second of the server's return.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pmt

from genjscc.blocks._meta import KEY_BACKEND, KEY_BACKEND_ERROR, KEY_BACKEND_OK
from genjscc.serve.client import Client, ServeError, parse_backend

__all__ = ["FALLBACKS", "KEY_BACKEND", "KEY_BACKEND_ERROR", "KEY_BACKEND_OK", "ServerBackend"]

FALLBACKS = ("none", "local")

T = TypeVar("T")


class ServerBackend:
    """Server calls of one block, with failure accounting (see the module docstring).

    Args:
        logger: the block's GNU Radio logger (state changes are logged, not every frame).
        backend: ``"local"`` or ``"tcp://HOST:PORT"``.
        fallback: ``"none"`` (mark failed frames) or ``"local"`` (decode them locally).
        timeout_s: seconds to wait for each reply.
        retries: extra attempts of a request that got no reply.
    """

    def __init__(self, logger: Any, backend: str, fallback: str = "none",
                 timeout_s: float = 2.0, retries: int = 1) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.logger, self.fallback = logger, fallback
        self.endpoint = parse_backend(backend)
        self.client = (Client(self.endpoint, timeout_s=timeout_s, retries=int(retries))
                       if self.endpoint else None)
        self._lock = threading.Lock()
        self._failures = 0
        self._fallbacks = 0
        self._down = False
        self._last_log = 0.0

    @property
    def remote(self) -> bool:
        return self.client is not None

    def num_failures(self) -> int:
        with self._lock:
            return self._failures

    def num_fallbacks(self) -> int:
        with self._lock:
            return self._fallbacks

    def run(self, remote: Callable[[], T], local: Callable[[], T] | None,
            failed: Callable[[], T]) -> tuple[T, dict[str, Any]]:
        """``remote()``; on a server failure ``local()`` (fallback) or ``failed()``.

        Returns the output and the metadata entries describing what produced it.
        """
        try:
            out = remote()
        except ServeError as error:
            self._failed(error)
            if self.fallback == "local" and local is not None:
                with self._lock:
                    self._fallbacks += 1
                return local(), {"backend_ok": False, "backend": "local-fallback",
                                 "backend_error": error.code}
            return failed(), {"backend_ok": False, "backend": "failed",
                              "backend_error": error.code}
        if self._down:
            self._down = False
            self.logger.info(f"inference server {self.endpoint} answers again")
        return out, {"backend_ok": True, "backend": "server"}

    def _failed(self, error: Exception) -> None:
        with self._lock:
            self._failures += 1
            count = self._failures
        now = time.monotonic()
        if not self._down or now - self._last_log > 10.0:
            self._down, self._last_log = True, now
            what = "decoding locally" if self.fallback == "local" else "marking frames failed"
            self.logger.warn(f"inference server {self.endpoint}: {error}; {what} "
                             f"({count} failed so far)")

    @staticmethod
    def add_meta(meta: pmt.pmt_base, info: dict[str, Any]) -> pmt.pmt_base:
        """``meta`` with ``backend_ok``, ``backend`` and (on failure) ``backend_error``.

        Only short codes become PMT symbols (symbols are interned for the life of the
        process); the full error text goes to the log."""
        meta = pmt.dict_add(meta, KEY_BACKEND_OK, pmt.from_bool(bool(info["backend_ok"])))
        meta = pmt.dict_add(meta, KEY_BACKEND, pmt.intern(str(info["backend"])))
        if "backend_error" in info:
            meta = pmt.dict_add(meta, KEY_BACKEND_ERROR, pmt.intern(str(info["backend_error"])))
        return meta
