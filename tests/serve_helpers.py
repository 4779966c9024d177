"""Start real `genjscc serve` processes on 127.0.0.1 for the tests (random free ports)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0  # torch import and model loading on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``genjscc serve ...`` in a subprocess; ``start()`` returns once it prints "ready"."""

    def __init__(self, *args: str, port: int | None = None, worker: bool = False) -> None:
        self.port = port or free_port()
        self.worker = worker
        if worker:
            self.args = ["--worker", *args]
        else:
            self.args = ["--bind", f"tcp://127.0.0.1:{self.port}",
                         "--worker-bind", "tcp://127.0.0.1:*", *args]
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self.ready_at: float | None = None

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def worker_endpoint(self) -> str:
        for line in self.lines:
            if "workers connect to " in line:
                return line.split("workers connect to ")[1].split(")")[0]
        raise RuntimeError("the server did not say its worker endpoint")

    def start(self, wait_ready: bool = True) -> ServerProcess:
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "genjscc.cli", "serve", *self.args], cwd=ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        threading.Thread(target=self._read, daemon=True).start()
        if wait_ready and not self.worker:
            self.wait_ready()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            if "ready on" in line and self.ready_at is None:
                self.ready_at = time.monotonic()
            self.lines.append(line)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_at is None:
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise RuntimeError(f"genjscc serve exited ({self.proc.returncode}):\n"
                                   + "".join(self.lines))
            if time.monotonic() > deadline:
                raise RuntimeError("genjscc serve not ready:\n" + "".join(self.lines))
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, as a crash would (local workers follow through PR_SET_PDEATHSIG)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
