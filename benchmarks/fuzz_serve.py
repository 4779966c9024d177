"""genjscc serve against hostile clients: inputs tried, error replies, hangs, RSS growth, and
the latency of a valid request while one client floods the server.

    .venv/bin/python benchmarks/fuzz_serve.py [--inputs 100000] [--flood-seconds 20]

One server (``genjscc serve``, one worker, models ecct-polar_n64_k32 and bp:LDPC_N49_K24,
default limits) takes, in turn:

1. ``--inputs`` hostile messages from one client, pipelined 500 at a time: valid requests
   (ECCT/BP decodes of 0-3 rows, broker ops) with one random edit each (bit flips, cuts,
   inserted or repeated bytes, an extra frame), seeded. Every message must get one reply
   within 10 s (else it counts as a hang); a successful decode must have as many rows as it
   asked for (else it counts as a wrong output). Then 10 000 junk messages on the worker
   port (fake ``ready``/``done``/``fatal``...): no rogue worker may register. The RSS of the
   server and its worker is read from /proc after the first 2 000 inputs and at the end.
2. Floods, each ``--flood-seconds``, from one client process: ``big`` (ECCT decodes of 2500
   rows, about 8 s of estimated work each, as fast as the server takes them: slices and
   ``busy`` replies), ``small`` (1-row ECCT decodes, 500 in flight) and ``junk`` (mutated
   messages). Meanwhile a second client sends one valid 1-row BP decode every 0.25 s and
   checks its bits; its latencies are the result (target: all under 2 s).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchlib import add_common_args, emit, table
from genjscc.testing.fuzz import mutate

REPO = Path(__file__).resolve().parent.parent
MODELS = "ecct-polar_n64_k32,bp:LDPC_N49_K24"
HANG_S = 10.0
TARGET_S = 2.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str, str]:
    port = free_port()
    endpoint, workers = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "genjscc.cli", "serve", "--models", MODELS, "--bind", endpoint,
         "--worker-bind", workers, "--workers", "1"],
        cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "ready on" in line:
            break
    else:
        raise SystemExit("genjscc serve did not start")
    return proc, endpoint, workers


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its child processes (the local worker), MB."""
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        pids += [int(c) for c in children]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


# ------------------------------------------------------------------------- inputs


def hostile(rng: np.random.Generator) -> list[bytes]:
    from genjscc.serve import protocol as P

    model = str(rng.choice(["ecct-polar_n64_k32", "bp:LDPC_N49_K24"]))
    n = 64 if model.startswith("ecct") else 49
    rows = int(rng.integers(0, 4))
    header = {"v": 1, "op": str(rng.choice(["decode", "decode", "health", "stats", "lm_step"])),
              "id": int(rng.integers(1 << 30)), "model": model, "timeout_ms": 5000,
              "params": {"num_iters": int(rng.integers(0, 60))}}
    frames = [bytes(f) for f in P.encode(header, [rng.normal(3, 2, (rows, n)).astype("<f4")])]
    i = int(rng.integers(len(frames)))
    frames[i] = mutate(frames[i], rng)
    if rng.random() < 0.05:
        frames.append(rng.bytes(int(rng.integers(0, 64))))
    return frames


def expected_rows(frames: list[bytes]) -> int | None:
    """Rows a decode asks for, if its header is readable (to check a successful reply)."""
    try:
        header = json.loads(frames[0])
        return int(header["arrays"][0]["shape"][0]) if header.get("op") == "decode" else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def fuzz(endpoint: str, workers: str, count: int, seed: int, pid: int) -> dict:
    import zmq

    from genjscc.serve import protocol as P

    rng = np.random.default_rng(seed)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    stats = {"inputs": 0, "replies": 0, "ok": 0, "errors": {}, "hangs": 0, "wrong": 0}
    rss_start = None
    start = time.monotonic()
    while stats["inputs"] < count:
        window = [hostile(rng) for _ in range(min(500, count - stats["inputs"]))]
        asked = {}
        for frames in window:
            sock.send_multipart(frames)
            rid = P.safe_id(frames[0])
            asked[rid] = expected_rows(frames)
        stats["inputs"] += len(window)
        for _ in window:
            if not sock.poll(int(HANG_S * 1000)):
                stats["hangs"] += 1
                break
            reply = sock.recv_multipart()
            if reply and reply[0] == b"":
                reply = reply[1:]
            header, arrays = P.parse_reply(reply)
            stats["replies"] += 1
            if header["ok"]:
                stats["ok"] += 1
                rows = asked.get(header["id"])
                if rows is not None and arrays and arrays[0].shape[0] != rows:
                    stats["wrong"] += 1
            else:
                code = header["error"]["code"]
                stats["errors"][code] = stats["errors"].get(code, 0) + 1
        if rss_start is None and stats["inputs"] >= 2000:
            rss_start = rss_mb(pid)
    stats["seconds"] = time.monotonic() - start
    sock.close(0)
    # the worker port: junk and fake workers
    wsock = zmq.Context.instance().socket(zmq.DEALER)
    wsock.setsockopt(zmq.LINGER, 0)
    wsock.connect(workers)
    for i in range(10_000):
        kind = ["ready", "done", "heartbeat", "hello", "fatal"][i % 5]
        msg = {"type": kind, "worker": f"w-{i:016x}", "task": i, "items": [{"tag": 0}],
               "models": [{"name": "bp:LDPC_N49_K24", "kind": "bp", "sha256": "0" * 64,
                           "device": "cpu", "info": {},
                           "ops": {"decode": {"merge": True, "session": None}}}]}
        wsock.send_multipart([P.WORKER_MAGIC, json.dumps(msg).encode()] if i % 2 else
                             [mutate(json.dumps(msg).encode(), rng)])
    time.sleep(2.0)
    wsock.close(0)
    stats["rss_start_mb"] = rss_start or rss_mb(pid)
    stats["rss_end_mb"] = rss_mb(pid)
    return stats


# ------------------------------------------------------------------------- floods


def flooder(endpoint: str, kind: str, seconds: float, seed: int) -> None:
    """One hostile client: keeps the server as busy as it lets it."""
    import zmq

    from genjscc.serve import protocol as P

    rng = np.random.default_rng(seed)
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.connect(endpoint)
    big = np.zeros((2500, 64), "<f4")
    one = np.zeros((1, 64), "<f4")
    inflight, end, i = 0, time.monotonic() + seconds, 0
    while time.monotonic() < end:
        limit = {"big": 64, "small": 500, "junk": 500}[kind]
        while inflight < limit:
            i += 1
            if kind == "junk":
                frames = hostile(rng)
            else:
                frames = P.encode({"v": 1, "op": "decode", "id": i, "model":
                                   "ecct-polar_n64_k32", "timeout_ms": 600_000},
                                  [big if kind == "big" else one])
            sock.send_multipart(frames)
            inflight += 1
        while sock.poll(10):
            sock.recv_multipart()
            inflight -= 1
    sock.close(0)


def victim(endpoint: str, seconds: float) -> list[float]:
    """A well-behaved client: a 1-row BP decode every 0.25 s; its latencies in s (inf: no
    reply within 30 s or a wrong or error reply)."""
    import zmq

    from genjscc.serve import protocol as P

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    llr = np.full((1, 49), 3.0, "<f4")  # the all-zero word, clearly
    out = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        i += 1
        t0 = time.monotonic()
        sock.send_multipart(P.encode({"v": 1, "op": "decode", "id": f"v{i}",
                                      "model": "bp:LDPC_N49_K24", "timeout_ms": 30_000,
                                      "params": {"num_iters": 20}}, [llr]))
        took = float("inf")
        while sock.poll(30_000):
            header, arrays = P.parse_reply(sock.recv_multipart())
            if header["id"] != f"v{i}":
                continue
            if header["ok"] and arrays and not arrays[0].any():
                took = time.monotonic() - t0
            break
        out.append(took)
        time.sleep(max(0.0, 0.25 - (time.monotonic() - t0)))
    sock.close(0)
    return out


def flood(endpoint: str, kind: str, seconds: float, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    proc = ctx.Process(target=flooder, args=(endpoint, kind, seconds + 2, seed), daemon=True)
    proc.start()
    time.sleep(2.0)  # the flood is on
    lat = np.asarray(victim(endpoint, seconds))
    proc.join(timeout=30)
    if proc.is_alive():
        proc.terminate()
    finite = lat[np.isfinite(lat)]
    return {"flood": kind, "requests": int(lat.size), "failed": int((~np.isfinite(lat)).sum()),
            "p50": float(np.median(finite)) if finite.size else float("inf"),
            "max": float(lat.max()) if lat.size else float("inf"),
            "over": int((lat > TARGET_S).sum())}


# ------------------------------------------------------------------------- report


def report(stats: dict, floods: list[dict], args: argparse.Namespace) -> str:
    growth = 100 * (stats["rss_end_mb"] / stats["rss_start_mb"] - 1)
    codes = ", ".join(f"{k} {v}" for k, v in sorted(stats["errors"].items()))
    lines = [
        f"Hostile inputs: {stats['inputs']:,} mutated requests from one client in "
        f"{stats['seconds']:.0f} s, then 10,000 junk messages on the worker port.",
        "",
        table(["inputs", "replies", "ok", "error replies", "hangs (> 10 s)",
               "wrong outputs", "server RSS start -> end", "growth"],
              [[f"{stats['inputs']:,}", f"{stats['replies']:,}", f"{stats['ok']:,}",
                f"{sum(stats['errors'].values()):,}", stats["hangs"], stats["wrong"],
                f"{stats['rss_start_mb']:.0f} -> {stats['rss_end_mb']:.0f} MB",
                f"{growth:+.1f} %"]]),
        "",
        f"Error replies by code: {codes}. Workers registered after the junk: "
        f"{stats['workers']} (the local one).",
        "",
        f"A valid 1-row BP decode every 0.25 s for {args.flood_seconds:g} s while one client "
        "floods the server (target: every reply within 2 s):",
        "",
        table(["flood", "valid requests", "failed", "p50 (s)", "max (s)", "over 2 s"],
              [[f["flood"], f["requests"], f["failed"], f"{f['p50']:.3f}", f"{f['max']:.3f}",
                f["over"]] for f in floods]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--flood-seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=15)
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.inputs, args.flood_seconds = 2000, 3.0
    proc, endpoint, workers = start_server()
    try:
        stats = fuzz(endpoint, workers, args.inputs, args.seed, proc.pid)
        print(json.dumps(stats), flush=True)
        from genjscc.serve.client import connect

        with connect(endpoint, timeout_s=30.0) as client:
            stats["workers"] = len(client.stats()["workers"])
        floods = []
        for kind in ("big", "small", "junk"):
            floods.append(flood(endpoint, kind, args.flood_seconds, args.seed))
            print(json.dumps(floods[-1]), flush=True)
            time.sleep(3.0)  # let the server drain
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    emit(args, report(stats, floods, args))


if __name__ == "__main__":
    main()
