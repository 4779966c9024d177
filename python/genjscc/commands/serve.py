"""Serve the neural parts (ECCT, BP, LM probabilities, ...) to radio hosts over ZeroMQ.

A broker binds --bind for clients (127.0.0.1 unless told otherwise) and --worker-bind for
workers (127.0.0.1 unless told otherwise, or with --curve-keys the --bind host); --workers
local worker processes load --models and run the batches. Requests of
the same model are batched dynamically (up to --max-batch requests, waiting at most
--max-delay-ms for more). Workers on other hosts join with `genjscc serve --worker --connect
tcp://BROKER:PORT` (the worker port) and prove --worker-secret FILE (or CurveZMQ keys).
Wire protocol, ops, limits and security: docs/protocol.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from genjscc.errors import GenjsccError
from genjscc.serve.protocol import MAX_CLIENT_QUEUE, MAX_REQUEST_MS, SLICE_MS

EPILOG = """\
examples:
  genjscc serve --models ecct-polar_n64_k32,lm-small,bp:LDPC_N49_K24
                                      serve on tcp://127.0.0.1:5555 (workers: port 5556)
  genjscc serve --models lm-small --device cuda --bind tcp://0.0.0.0:5555 \\
                --curve-keys keys/ --workers 2 --max-batch 64 --max-delay-ms 2
                                      a GPU host reachable by others, authenticated
  genjscc serve --worker --connect tcp://gpu-host:5556 --device cuda --curve-keys keys/
                                      one more worker from another host
  genjscc serve --models lm-small --worker-bind tcp://10.0.0.5:5556 --worker-secret s.txt
  genjscc serve --worker --connect tcp://10.0.0.5:5556 --worker-secret s.txt
                                      workers on a private network without CurveZMQ
  genjscc serve --gen-keys keys/      CurveZMQ keys: copy keys/server.key and
                                      keys/client.key_secret to the clients
  genjscc serve --status tcp://gpu-host:5555    health, models and stats as JSON

clients: blocks take backend="tcp://HOST:5555"; genjscc ber/compress/decompress take
--backend tcp://HOST:5555; set GENJSCC_CURVE_KEYS=DIR for a server with --curve-keys.
model specs: a zoo name (genjscc models), bp:CODE, ecct:FILE.safetensors, lm:smollm2.

limits (docs/protocol.md): a request estimated over --max-request-ms of work (rows x the
model's cost per row; pixels x 4e-4 ms for JSCC) gets 'too_large' before any work; a batched
decode larger than --slice-ms is cut into slices, served round-robin between clients; a
client may queue --max-client-queue requests; per worker, LM sessions hold at most 16384
rows together (then 'busy') and expire after 10 idle minutes; frames of 64 MiB, messages of 256 MiB.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--models", default="",
                        help="comma-separated models to serve (zoo names, bp:CODE, "
                             "ecct:FILE, lm:smollm2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--bind", default="tcp://127.0.0.1:5555",
                        help="client endpoint (default: %(default)s; use tcp://0.0.0.0:PORT "
                             "to accept other hosts, with --curve-keys)")
    parser.add_argument("--worker-bind", default=None, metavar="ENDPOINT",
                        help="worker endpoint (default: port + 1 on 127.0.0.1, or on the "
                             "--bind host with --curve-keys)")
    parser.add_argument("--worker-secret", default=None, metavar="FILE",
                        help="shared secret (16+ bytes) workers must prove to join; give "
                             "remote workers the same file (default: a random one, known "
                             "to the local workers only)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local worker processes (default: %(default)s; 0: remote only)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="requests merged into one model call (default: %(default)s; "
                             "1 turns batching off)")
    parser.add_argument("--max-delay-ms", type=float, default=2.0,
                        help="longest wait for a batch to fill while another worker is busy; with "
                             "every worker idle a request goes out at once (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker for batched ops (default: %(default)s)")
    parser.add_argument("--max-queue", type=int, default=4096,
                        help="queued requests before new ones get 'busy' (default: %(default)s)")
    parser.add_argument("--max-client-queue", type=int, default=MAX_CLIENT_QUEUE,
                        help="queued requests of one client before its new ones get 'busy' "
                             "(default: %(default)s)")
    parser.add_argument("--max-request-ms", type=float, default=MAX_REQUEST_MS,
                        help="estimated work of one request (ms on one core of the reference "
                             "machine) above which it gets 'too_large' (default: %(default)g)")
    parser.add_argument("--slice-ms", type=float, default=SLICE_MS,
                        help="work of one slice: larger requests are cut and served in turn "
                             "with other clients' (default: %(default)g)")
    parser.add_argument("--curve-keys", default=None, metavar="DIR",
                        help="CurveZMQ authentication and encryption with the keys in DIR")
    parser.add_argument("--worker", action="store_true",
                        help="run one worker that connects to a broker (with --connect)")
    parser.add_argument("--connect", default=None, metavar="ENDPOINT",
                        help="with --worker: the broker's worker endpoint tcp://HOST:PORT")
    parser.add_argument("--gen-keys", default=None, metavar="DIR",
                        help="write CurveZMQ keys into DIR and exit")
    parser.add_argument("--client-name", default="client",
                        help="with --gen-keys: name of the client key pair (default: client)")
    parser.add_argument("--status", default=None, metavar="ENDPOINT",
                        help="print a server's health, models and stats as JSON and exit")


def _models(text: str) -> list[str]:
    return [m.strip() for m in text.split(",") if m.strip()]


def run(args: argparse.Namespace) -> int:
    if args.gen_keys:
        from genjscc.serve.security import generate_keys

        for path in generate_keys(args.gen_keys, args.client_name):
            print(path)
        print(f"give clients {args.gen_keys}/server.key and {args.gen_keys}/"
              f"{args.client_name}.key_secret; serve with --curve-keys {args.gen_keys}",
              file=sys.stderr)
        return 0
    if args.status:
        from genjscc.serve.client import connect

        with connect(args.status, timeout_s=5.0, retries=0) as client:
            report = {"health": client.health(), "models": client.models(),
                      "stats": client.stats()}
        print(json.dumps(report, indent=2))
        return 0
    if args.worker:
        if not args.connect:
            raise GenjsccError("--worker needs --connect tcp://BROKER:PORT (the broker's "
                               "worker endpoint, its --bind port + 1 by default)")
        from genjscc.serve.client import parse_backend
        from genjscc.serve.worker import Worker

        parse_backend(args.connect)
        from genjscc.serve.worker import worker_secret

        secret = worker_secret(args.worker_secret)
        if secret is None and not args.curve_keys:
            raise GenjsccError("a worker needs --worker-secret FILE (the broker's) or "
                               "--curve-keys DIR to be accepted by the broker")
        worker = Worker(args.connect, _models(args.models) or None, args.device, args.threads,
                        args.curve_keys, secret=secret)
        import signal

        signal.signal(signal.SIGTERM, lambda *_: worker.stop.set())
        try:
            return worker.run()
        except KeyboardInterrupt:
            return 0
    from genjscc.serve.server import ServeConfig, serve

    config = ServeConfig(models=_models(args.models), device=args.device, bind=args.bind,
                         worker_bind=args.worker_bind, workers=args.workers,
                         max_batch=args.max_batch, max_delay_ms=args.max_delay_ms,
                         threads=args.threads, curve_keys=args.curve_keys,
                         max_queue=args.max_queue, max_client_queue=args.max_client_queue,
                         max_request_ms=args.max_request_ms, slice_ms=args.slice_ms,
                         worker_secret=args.worker_secret)
    if args.models:
        from genjscc.serve.registry import split_spec

        for spec in config.models:
            split_spec(spec)  # a typo fails here, in one line, before any worker starts
    serve(config)
    return 0
