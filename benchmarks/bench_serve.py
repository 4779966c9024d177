"""genjscc serve under load: requests/s and latency with 1, 8 and 32 clients, batching on/off.

    .venv/bin/python benchmarks/bench_serve.py [--seconds 4] [--clients 1 8 32] [--threads 1]

Two servers are started in turn (``genjscc serve``, one worker process, ``--threads`` torch
threads for the batched ops, 1 by default):
batching on (``--max-batch 32 --max-delay-ms 2``) and off (``--max-batch 1``). Each client is
its own process running a closed loop (send, wait for the reply, send again) for
``--seconds``; all clients of a run start together. One request is:

* ``ecct``: ECCT decoding of one Polar(64,32) codeword (zoo model ecct-polar_n64_k32);
* ``bp``: sum-product BP (20 iterations) of one LDPC(49,24) codeword, for comparison;
* ``lm``: one LM step of a one-row session of lm-small (the model and path ``genjscc
  compress --backend`` uses for a one-chunk message; each client holds its own session).

LM steps of several sessions are merged into one model call: lm-small computes in integers,
so every session gets exactly what it would get alone (LM coding needs bit-identical
frequency tables). Latency is measured at the client (send to reply).
"lost" counts requests without a reply (timeouts) or with an error reply; the target is zero.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchlib import add_common_args, emit, table

REPO = Path(__file__).resolve().parent.parent
MODELS = "ecct-polar_n64_k32,lm-small,bp:LDPC_N49_K24"
OPS = ("ecct", "bp", "lm")
TARGET_RATIO = 5.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(max_batch: int, max_delay_ms: float, threads: int = 1
                 ) -> tuple[subprocess.Popen, str]:
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "genjscc.cli", "serve", "--models", MODELS, "--bind", endpoint,
         "--worker-bind", "tcp://127.0.0.1:*", "--workers", "1", "--threads", str(threads),
         "--max-batch", str(max_batch), "--max-delay-ms", str(max_delay_ms),
         "--max-queue", "100000"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if "ready on" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(120):
        proc.kill()
        raise SystemExit("genjscc serve did not start:\n" + "".join(lines))
    return proc, endpoint


def client_loop(job: tuple) -> dict:
    """One client process: closed-loop requests of ``op`` from ``start_at`` for ``seconds``."""
    endpoint, op, start_at, seconds, seed = job
    from genjscc.serve.client import Client, ServeError

    rng = np.random.default_rng(seed)
    client = Client(endpoint, timeout_s=30.0, retries=0)
    latencies: list[float] = []
    lost = 0
    if op == "lm":
        info = next(m for m in client.models() if m["name"] == "lm-small")["info"]
        sid = client.request("lm_start", "lm-small", params={
            "rows": 1, "threads": 1, "row_block": info["row_block"]}).result["session"]
        step = 0
    words = [(2.0 * (1.0 + 0.7 * rng.standard_normal((1, 64 if op == "ecct" else 49)))
              / 0.49).astype(np.float32) for _ in range(16)]
    tokens = [np.array([t], dtype="<i8") for t in rng.integers(0, 256, 64)]
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    cpu0 = time.process_time()
    i = 0
    while True:
        t0 = time.perf_counter()
        if time.time() >= end:
            break
        try:
            if op == "ecct":
                client.request("decode", "ecct-polar_n64_k32", [words[i % 16]])
            elif op == "bp":
                client.request("decode", "bp:LDPC_N49_K24", [words[i % 16]],
                               {"decoder": "bp", "num_iters": 20, "options": {}})
            else:
                client.request("lm_step", "lm-small", [tokens[i % 64]],
                               {"session": sid, "t": step})
                step += 1
            latencies.append(time.perf_counter() - t0)
        except ServeError:
            lost += 1
        i += 1
    cpu_s = time.process_time() - cpu0
    client.close()
    return {"latencies": latencies, "lost": lost, "cpu_s": cpu_s}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its descendants (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue  # a process that ended in between
    return total


def server_stats(endpoint: str) -> dict:
    from genjscc.serve.client import Client

    with Client(endpoint, timeout_s=10.0) as c:
        return c.stats()["models"]


def mean_batch(before: dict, after: dict, model: str) -> float:
    b = before.get(model, {}).get("batch_sizes", {})
    a = after.get(model, {}).get("batch_sizes", {})
    counts = {int(k): v - b.get(k, 0) for k, v in a.items()}
    total = sum(counts.values())
    return sum(k * v for k, v in counts.items()) / total if total else 0.0


MODEL_OF = {"ecct": "ecct-polar_n64_k32", "bp": "bp:LDPC_N49_K24", "lm": "lm-small"}


def measure(pool, endpoint: str, op: str, clients: int, seconds: float,
            server_pid: int | None = None) -> dict:
    before = server_stats(endpoint)
    start_at = time.time() + 0.5
    jobs = [(endpoint, op, start_at, seconds, 1000 * clients + k) for k in range(clients)]
    server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
    results = pool.map(client_loop, jobs, chunksize=1)
    # includes the idle 0.5 s before the start and the two stats calls: small against the load
    server_cpu = cpu_seconds(server_pid) - server_cpu if server_pid else float("nan")
    after = server_stats(endpoint)
    lat = np.concatenate([np.asarray(r["latencies"]) for r in results]) * 1e3
    done = int(lat.size)
    return {"op": op, "clients": clients, "requests": done, "rate": done / seconds,
            "server_cpu_us": 1e6 * server_cpu / max(done, 1),
            "client_cpu_us": 1e6 * sum(r["cpu_s"] for r in results) / max(done, 1),
            "p50": float(np.percentile(lat, 50)) if done else float("nan"),
            "p99": float(np.percentile(lat, 99)) if done else float("nan"),
            "lost": sum(r["lost"] for r in results),
            "batch": mean_batch(before, after, MODEL_OF[op])}


def model_alone(repeats: int, threads: int = 1) -> dict[str, tuple[float, float]]:
    """Per-request milliseconds of the model call alone, in this process on ``threads``
    threads (LM: one, as its sessions): one request per call, and 32 requests merged into one
    call (the ceiling of batching)."""
    import torch

    from genjscc.core.fec.codes import get_code
    from genjscc.core.fec.decoders import make_decoder
    from genjscc.core.source.codec import load_model

    torch.set_num_threads(threads)

    def timed(fn, arg) -> float:
        fn(arg)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(arg)
            times.append(time.perf_counter() - t0)
        return float(np.median(times)) * 1e3

    out = {}
    for op, code_name, decoder, iters in (("ecct", "POLAR_N64_K32", "ecct", 50),
                                          ("bp", "LDPC_N49_K24", "bp", 20)):
        code = get_code(code_name)
        dec = make_decoder(decoder, code, num_iters=iters)
        llr = 2.0 * (1.0 + 0.7 * torch.randn(32, code.n, generator=torch.Generator()
                                             .manual_seed(0))) / 0.49
        out[op] = (timed(dec, llr[:1]), timed(dec, llr) / 32)
    lm = load_model("small")
    torch.set_num_threads(1)
    with torch.inference_mode():
        for rows in (1, 32):
            state = lm.start_state(rows)
            tokens = torch.zeros(rows, dtype=torch.int64)
            ms = timed(lambda t, state=state: lm.step(state, t), tokens) / rows
            out["lm"] = (ms,) if rows == 1 else (out["lm"][0], ms)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=4.0, help="load per configuration")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--ops", nargs="+", default=list(OPS), choices=OPS)
    ap.add_argument("--json", default=None, help="also write the rows as JSON")
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.clients = 0.5, [1, 4]
    alone = model_alone(5 if args.quick else 100, args.threads)  # before any server runs
    rows: list[dict] = []
    ctx = mp.get_context("spawn")
    with ctx.Pool(max(args.clients)) as pool:
        for label, max_batch, delay in (("on", 32, 2.0), ("off", 1, 0.0)):
            proc, endpoint = start_server(max_batch, delay, args.threads)
            try:
                for op in args.ops:
                    measure(pool, endpoint, op, 2, min(0.5, args.seconds))  # warm-up
                    for clients in args.clients:
                        row = measure(pool, endpoint, op, clients, args.seconds, proc.pid)
                        row["batching"] = label
                        rows.append(row)
                        print(f"batching {label:3s} {op:4s} {clients:3d} clients: "
                              f"{row['rate']:8.0f} req/s  p50 {row['p50']:7.2f} ms  p99 "
                              f"{row['p99']:7.2f} ms  batch {row['batch']:5.1f}  lost "
                              f"{row['lost']}", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "model_alone": alone}, indent=2))
    emit(args, report(rows, args, alone))


def _unbatched_rate(rows: list[dict], op: str) -> float | None:
    """Measured requests/s of ``op`` without batching at the largest client count."""
    off = [r for r in rows if r["op"] == op and r["batching"] == "off"]
    return max(off, key=lambda r: r["clients"])["rate"] if off else None


def _bound(rows: list[dict], op: str, merged_ms: float) -> str:
    """Requests/s one worker could give if the merged model call were all it did, against
    the measured unbatched rate at the largest client count."""
    rate = _unbatched_rate(rows, op)
    if rate is None:
        return "n/a"
    return f"{1e3 / merged_ms:,.0f} / {rate:,.0f} = {1e3 / merged_ms / rate:.1f}x"


def _ecct_words(rows: list[dict], alone: dict[str, tuple[float, float]]) -> str:
    """What the ECCT ceiling means for the target, in this run's numbers."""
    rate = _unbatched_rate(rows, "ecct")
    if "ecct" not in alone or rate is None:
        return ""
    bound = 1e3 / alone["ecct"][1] / rate
    words = (f"The ECCT forward pass is compute-bound on this CPU: 32 merged codewords cost "
             f"{alone['ecct'][0] / alone['ecct'][1]:.1f}x less each than one alone, and a worker "
             f"doing nothing but merged calls would serve {bound:.1f}x the unbatched rate")
    return words + (", so batching cannot reach 5x for ECCT in this configuration."
                    if bound < TARGET_RATIO else ".")


def report(rows: list[dict], args: argparse.Namespace,
           alone: dict[str, tuple[float, float]]) -> str:
    table_rows = [[r["op"], r["batching"], r["clients"], f"{r['rate']:,.0f}", f"{r['p50']:.2f}",
                   f"{r['p99']:.2f}", f"{r['batch']:.1f}", r["lost"],
                   f"{r.get('server_cpu_us', math.nan):.0f}",
                   f"{r.get('client_cpu_us', math.nan):.0f}"]
                  for r in sorted(rows, key=lambda r: (OPS.index(r["op"]), r["batching"] == "off",
                                                       r["clients"]))]
    top = max(args.clients)
    verdicts = []
    for op in args.ops:
        on = next((r for r in rows if r["op"] == op and r["batching"] == "on"
                   and r["clients"] == top), None)
        off = next((r for r in rows if r["op"] == op and r["batching"] == "off"
                    and r["clients"] == top), None)
        if on and off and off["rate"] > 0:
            ratio = on["rate"] / off["rate"]
            verdict = "meets" if ratio >= TARGET_RATIO else "does NOT meet"
            verdicts.append(f"- {op}: batching on / off at {top} clients = **{ratio:.2f}x** "
                            f"({verdict} the {TARGET_RATIO:g}x target)")
    lost = sum(r["lost"] for r in rows)
    cpu_lines = []
    for op in args.ops:
        for label in ("on", "off"):
            r = next((r for r in rows if r["op"] == op and r["batching"] == label
                      and r["clients"] == top), None)
            if r and math.isfinite(r.get("server_cpu_us", math.nan)):
                per = r["server_cpu_us"] + r["client_cpu_us"]
                cpu_lines.append(
                    f"- {op}, batching {label}, {top} clients: server {r['server_cpu_us']:.0f} + "
                    f"clients {r['client_cpu_us']:.0f} = {per:.0f} us of CPU per request, so "
                    f"{os.cpu_count()} cores allow at most {os.cpu_count() * 1e6 / per:,.0f} "
                    f"requests/s (measured {r['rate']:,.0f})")
    return "\n\n".join([
        f"One worker process, {args.threads} torch thread(s) for batched ops, CPU; each "
        f"client a process in a closed loop for {args.seconds:g} s. Batching on: "
        "`--max-batch 32 --max-delay-ms 2`; off: `--max-batch 1`. One request = one "
        "Polar(64,32) codeword (ecct), one LDPC(49,24) codeword with BP-20 (bp), or one LM "
        "step of a one-row lm-small session (lm, as `genjscc compress --backend` codes a "
        "one-chunk message). Latency at the client; batch = mean "
        "requests per model call at the server; CPU = user + system CPU time per request of "
        "the server (broker and worker processes) and of all clients together, which share "
        "the machine's cores with it.",
        table(["op", "batching", "clients", "requests/s", "p50 ms", "p99 ms", "batch", "lost",
               "server CPU us/req", "clients CPU us/req"], table_rows),
        "Batching gain at the largest client count:\n\n" + "\n".join(verdicts),
        f"Lost replies (timeouts or error replies) over all runs: **{lost}** (target 0).",
        "Where the CPU goes (the load generator runs on the same machine as the server):\n\n"
        + "\n".join(cpu_lines),
        f"The model call alone, in the benchmark's process on {args.threads} thread(s) (lm: "
        "1) before the servers run (median of 100 calls), bounds what merging can give: per "
        "request, one request per call against 32 merged into one call (for lm: 32 one-row "
        "sessions in one step). A worker cannot serve more than 1000 / (ms per request, 32 "
        "merged) requests/s; the last column compares that bound with the measured rate "
        "without batching at the largest client count:",
        table(["op", "ms per request, alone", "ms per request, 32 merged", "ceiling",
               "worker's bound / unbatched rate"],
              [[op, f"{a:.3f}", f"{b:.3f}", f"{a / b:.1f}x", _bound(rows, op, b)]
               for op, (a, b) in alone.items()]),
        _ecct_words(rows, alone) + " BP gains more per merged call, and the server adds its "
        "per-request overhead to every op, which batching shares. LM steps of one-row "
        "sessions merge (lm-small is integer: a merged step gives every session exactly its "
        "own tables). With one client batching costs nothing: the broker sends a request on "
        "at once while every worker is idle and merges only what queues while they are busy "
        "(--max-delay-ms holds an idle worker only beside busy ones). The machine is shared: "
        "the load average above says how much the other jobs took.",
    ])


if __name__ == "__main__":
    main()
