"""What a server can serve: a small registry of model *kinds*, each a loader and batched ops.

A **servable** is one loaded model (:class:`Servable`): its name, kind, weights sha256, the
device it runs on, a JSON ``info`` dict the client uses (code length, vocabulary, ...) and its
**ops**. An op (:class:`Op`) is a function ``call(arrays, params) -> (arrays, result)`` on
numpy arrays. Ops with ``merge=True`` are *batched*: the server concatenates compatible
requests (same params, same dtypes and trailing shapes) along axis 0, calls once and splits
the outputs by rows again, so each output array's first dimension must equal the input rows.
Ops with ``session`` set are routed to the worker holding that session (LM state).

Kinds shipped here: ``ecct`` (zoo ECCT models or ``.safetensors`` files), ``bp`` (belief
propagation on a code's ``H``: model spec ``bp:CODE``), ``lm`` (next-symbol probabilities of
:mod:`genjscc.core.source.lm` models). Adding a kind takes a loader and one line::

    from genjscc.serve.registry import Op, Servable, register_kind

    def load_jscc(spec: str, device: str) -> Servable:
        model = load_my_model(spec, device)                       # your code
        def encode(arrays, params):                               # batched, on numpy
            return [model.encode(arrays[0], snr_db=params["snr_db"])], {}
        return Servable(spec, "jscc", sha256_of_weights, device, {"shape": [3, 32, 32]},
                        {"encode": Op(encode, merge=True)})

    register_kind("jscc", load_jscc)          # or "genjscc.core.jscc.serve:load_jscc" (lazy)

after which ``genjscc serve --models jscc-NAME`` serves every zoo model of kind ``jscc`` and
``genjscc.serve.client.connect(backend).batched("jscc-NAME", "encode")`` calls it.

Model specs (``--models``): a zoo name (its manifest ``kind`` picks the loader), or
``KIND:REST`` with an explicit kind (``bp:LDPC_N49_K24``, ``ecct:/path/model.safetensors``,
``lm:smollm2``, ``lm:/path/lm.safetensors``). ``smollm2`` alone means ``lm:smollm2``.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genjscc.errors import GenjsccError

Arrays = list[np.ndarray]


class OpError(ValueError):
    """An op's refusal with a protocol error code (``unknown_session``, ``out_of_order``,
    ...); a plain ValueError or TypeError is sent back as ``invalid_input``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

OpCall = Callable[[Arrays, dict[str, Any]], tuple[Arrays, dict[str, Any]]]


@dataclass
class Op:
    """One operation of a servable.

    Attributes:
        call: ``call(arrays, params) -> (output arrays, result dict)``; raises ValueError for
            input that does not suit the model (sent back as ``invalid_input``).
        merge: requests may be concatenated along axis 0 (see the module docstring).
        check: per-request validation ``check(arrays, params)`` run before merging, so one
            bad request fails alone (raise ValueError).
        session: ``"start"``, ``"use"`` or ``"end"`` for ops on per-client state.
        call_many: for session ops, ``call_many([(arrays, params), ...])`` runs requests that
            were queued together (several sessions' LM steps) and returns, per request,
            ``(arrays, result)`` or the exception that request raised; the op decides what
            it can merge.
        cost: the estimated work of a request, for the broker's per-request cap and slices:
            ``{"ms_per_value": C}`` (ms per value of the first array on one core of the
            reference machine), optionally with ``"scale": PARAM, "scale_default": D`` (times
            ``params[PARAM]``, e.g. ``num_iters``); None: not estimated (not capped).
    """

    call: OpCall
    merge: bool = False
    check: Callable[[Arrays, dict[str, Any]], None] | None = None
    session: str | None = None
    call_many: Callable[[list[tuple[Arrays, dict[str, Any]]]], list[Any]] | None = None
    cost: dict[str, Any] | None = None


@dataclass
class Servable:
    """A loaded model behind the server (see the module docstring)."""

    name: str
    kind: str
    sha256: str
    device: str
    info: dict[str, Any]
    ops: dict[str, Op]
    close: Callable[[], None] | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        """The JSON description workers send to the broker and the ``models`` op returns."""
        return {"name": self.name, "kind": self.kind, "sha256": self.sha256,
                "device": self.device, "info": self.info,
                "ops": {name: {"merge": op.merge, "session": op.session, "cost": op.cost}
                        for name, op in self.ops.items()}}


Loader = Callable[[str, str], Servable]
"""``loader(spec, device) -> Servable``; ``spec`` is what follows ``KIND:`` (or the zoo name)."""

KINDS: dict[str, Loader | str] = {
    "ecct": "genjscc.serve.registry:load_ecct",
    "bp": "genjscc.serve.registry:load_bp",
    "lm": "genjscc.serve.registry:load_lm",
    "jscc": "genjscc.serve.jscc:load_jscc",
}
"""Kind -> loader, or a lazy ``"module:attribute"`` naming one."""


def register_kind(kind: str, loader: Loader | str, *, overwrite: bool = False) -> None:
    """Make model kind ``kind`` servable (``loader(spec, device) -> Servable``)."""
    if not isinstance(kind, str) or not kind.isidentifier() or kind != kind.lower():
        raise ValueError(f"kind must be a lower-case identifier, got {kind!r}")
    if not (callable(loader) or (isinstance(loader, str) and ":" in loader)):
        raise TypeError("loader must be a callable or a 'module:attribute' string")
    if kind in KINDS and not overwrite:
        raise ValueError(f"kind {kind!r} is already registered (pass overwrite=True)")
    KINDS[kind] = loader


def _loader(kind: str) -> Loader:
    entry = KINDS[kind]
    if isinstance(entry, str):
        module_name, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module_name), attr)
        KINDS[kind] = entry
    return entry


def split_spec(spec: str) -> tuple[str, str]:
    """``(kind, rest)`` of a model spec (module docstring); GenjsccError if none fits."""
    spec = spec.strip()
    if not spec:
        raise GenjsccError("empty model name in --models")
    head, sep, rest = spec.partition(":")
    if sep and head in KINDS:
        return head, rest
    if spec in ("smollm2", "smollm2-135m", "small"):
        return "lm", spec
    from genjscc.zoo import list_models

    kinds = {m.name: m.kind for m in list_models()}
    if spec in kinds:
        if kinds[spec] not in KINDS:
            raise GenjsccError(f"model {spec!r} is of kind {kinds[spec]!r}, which this "
                               f"server cannot serve yet (servable kinds: {', '.join(KINDS)})")
        return kinds[spec], spec
    served = ", ".join(f"{n} ({k})" for n, k in kinds.items() if k in KINDS)
    raise GenjsccError(f"unknown model {spec!r}: use a zoo model ({served}), bp:CODE, "
                       f"ecct:FILE.safetensors, lm:smollm2 or lm:FILE")


def load_servable(spec: str, device: str = "cpu") -> Servable:
    """Load the model of ``spec`` on ``device``; its ``name`` is ``spec`` as given."""
    kind, rest = split_spec(spec)
    servable = _loader(kind)(rest, device)
    servable.name = spec.strip()
    return servable


# ----------------------------------------------------------------------------- helpers


def parity_check_sha256(H: Any) -> str:
    """sha256 of a parity-check matrix's structure (shape and sorted positions of its ones),
    the same for a dense numpy matrix and a scipy.sparse one with the same ones."""
    if hasattr(H, "tocoo"):
        coo = H.tocoo()
        rows, cols, vals = coo.row, coo.col, np.asarray(coo.data)
        keep = (vals % 2) != 0
        rows, cols = rows[keep], cols[keep]
        shape = H.shape
    else:
        h = np.asarray(H.detach().cpu().numpy() if hasattr(H, "detach") else H)
        rows, cols = np.nonzero(h % 2)
        shape = h.shape
    order = np.lexsort((cols, rows))
    digest = hashlib.sha256(f"H{shape[0]}x{shape[1]}:".encode())
    digest.update(np.asarray(rows, dtype="<i8")[order].tobytes())
    digest.update(np.asarray(cols, dtype="<i8")[order].tobytes())
    return digest.hexdigest()


def _llr_check(n: int) -> Callable[[Arrays, dict[str, Any]], None]:
    def check(arrays: Arrays, params: dict[str, Any]) -> None:
        if len(arrays) != 1:
            raise ValueError(f"expected 1 array (LLRs [B, {n}]), got {len(arrays)}")
        llr = arrays[0]
        if llr.ndim != 2 or llr.shape[1] != n:
            raise ValueError(f"LLRs must have shape [B, {n}], got {list(llr.shape)}")
        if llr.dtype.kind != "f":
            raise ValueError(f"LLRs must be float32 or float64, got {llr.dtype}")
    return check


def _torch_device(device: str):
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GenjsccError(f"--device {device}: torch sees no CUDA device on this host")
    return dev


# -------------------------------------------------------------------------------- ecct

# Work estimates (ms on one core of the reference machine, the project's 2-core x86 dev
# host; docs/protocol.md, Limits, says how they were measured). An ECCT row costs
# layers x (d_model / 32) x (a T + b T^2) with T = n + m tokens (linear layers + attention);
# a BP row costs BP_MS_PER_VALUE_ITER per LLR and iteration (the slowest decoder measured).
ECCT_MS_PER_TOKEN = 0.02 / 6
ECCT_MS_PER_TOKEN2 = 1.5e-4 / 6
BP_MS_PER_VALUE_ITER = 1e-4


def ecct_row_ms(n: int, m: int, num_layers: int, d_model: int) -> float:
    """Estimated ms to decode one word with an ECCT of this shape (see the constants)."""
    tokens = n + m
    return num_layers * (d_model / 32) * (ECCT_MS_PER_TOKEN * tokens
                                          + ECCT_MS_PER_TOKEN2 * tokens ** 2)



def load_ecct(spec: str, device: str) -> Servable:
    """An ECCT: op ``decode`` takes LLRs ``<f4 [B, n]`` (finite, ``ln P(0)/P(1)``) and returns
    bits ``|u1 [B, n]``; ``info`` has ``n``, ``m`` and ``h_sha256`` (:func:`parity_check_sha256`
    of the model's H) so a client checks the model decodes its code."""
    import torch

    from genjscc import zoo
    from genjscc.core.ecct.model import ECCTDecoder

    dev = _torch_device(device)
    ref = zoo.resolve(spec, "ecct")
    sha = ref.sha256
    net = zoo.load(ref, "ecct", dev)
    decoder = ECCTDecoder(net, device=dev)
    n = net.n
    h = net.H.to(torch.uint8).cpu().numpy()

    def decode(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        llr = torch.from_numpy(np.array(arrays[0], dtype=np.float32))  # a writable copy
        if not bool(torch.isfinite(llr).all()):
            raise ValueError("LLRs contain NaN or inf; clip them and set erasures to 0")
        bits = decoder(llr.to(dev)).cpu().numpy().astype(np.uint8, copy=False)
        return [bits], {}

    info = {"n": n, "m": int(net.m), "h_sha256": parity_check_sha256(h),
            "config": {k: getattr(net.config, k) for k in ("num_layers", "d_model",
                                                           "num_heads")}}
    row_ms = ecct_row_ms(n, int(net.m), net.config.num_layers, net.config.d_model)
    return Servable(spec, "ecct", sha, dev.type, info,
                    {"decode": Op(decode, merge=True, check=_llr_check(n),
                                  cost={"ms_per_value": row_ms / n})})


# ---------------------------------------------------------------------------------- bp

BP_DECODERS_CACHED = 8


def load_bp(spec: str, device: str) -> Servable:
    """Belief propagation on the ``H`` of code ``spec`` (a name, file or 5G spec of
    :func:`genjscc.core.fec.codes.get_code`).

    Op ``decode``: LLRs ``<f4 [B, n]`` (rate-recovered, aligned with ``H``'s columns) and
    params ``decoder`` (a :func:`~genjscc.core.fec.decoders.list_decoders` name other than
    ``ecct``), ``num_iters`` and ``options`` (a JSON object of decoder options) -> bits
    ``|u1 [B, n]``, iterations ``<i4 [B]`` (-1 when the decoder does not report them) and
    ``syndrome_ok`` ``|u1 [B]``. The ``sha256`` of a bp model is its ``h_sha256``: there are
    no weights, and the client checks it decodes the same code.
    """
    import torch

    from genjscc.core.fec.codes import get_code
    from genjscc.core.fec.decoders import list_decoders, make_decoder

    dev = _torch_device(device)
    try:
        code = get_code(spec)
    except (ValueError, FileNotFoundError) as error:
        raise GenjsccError(f"bp:{spec}: {error}") from error
    n = int(code.n)
    h_sha = parity_check_sha256(code.H)
    cache: dict[str, Any] = {}
    allowed = [d for d in list_decoders() if d != "ecct"]

    def build(params: dict[str, Any]):
        from genjscc.serve.protocol import canonical_params

        name = params.get("decoder", "bp")
        iters = params.get("num_iters", 50)
        options = params.get("options", {})
        if not isinstance(name, str) or name.strip().lower().replace("_", "-") not in allowed:
            raise ValueError(f"decoder {name!r}: use one of {', '.join(allowed)}")
        if isinstance(iters, bool) or not isinstance(iters, int) or not 0 <= iters <= 10_000:
            raise ValueError(f"num_iters must be an integer in [0, 10000], got {iters!r}")
        if not isinstance(options, dict) or not all(
                isinstance(v, bool | int | float | str | None) for v in options.values()):
            raise ValueError("options must be a JSON object of numbers, strings and bools")
        options = {k: v for k, v in options.items() if k != "device"}
        key = canonical_params({"d": name, "i": iters, "o": options})
        if key not in cache:
            if len(cache) >= BP_DECODERS_CACHED:
                cache.pop(next(iter(cache)))
            if name != "ldpc-cpp" and name != "none":
                options["device"] = dev
            cache[key] = make_decoder(name, code, num_iters=iters, **options)
        return cache[key]

    def check(arrays: Arrays, params: dict[str, Any]) -> None:
        _llr_check(n)(arrays, params)
        build(params)

    def decode(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        decoder = build(params)
        llr = torch.from_numpy(np.array(arrays[0], dtype=np.float32)).to(dev)
        if hasattr(decoder, "decode"):
            res = decoder.decode(llr)
            bits, iters, ok = res.bits, res.num_iters.to(torch.int32), res.syndrome_ok
        else:
            bits = decoder(llr)
            iters = torch.full((llr.shape[0],), -1, dtype=torch.int32)
            ok = ~code.syndrome(bits).any(dim=-1).bool()
        return [bits.cpu().numpy().astype(np.uint8, copy=False),
                iters.cpu().numpy().astype("<i4", copy=False),
                ok.cpu().numpy().astype(np.uint8)], {}

    info = {"n": n, "m": int(code.H.shape[0]), "code": code.name, "h_sha256": h_sha,
            "decoders": allowed}
    cost = {"ms_per_value": BP_MS_PER_VALUE_ITER, "scale": "num_iters", "scale_default": 50}
    return Servable(f"bp:{spec}", "bp", h_sha, dev.type, info,
                    {"decode": Op(decode, merge=True, check=check, cost=cost)})


# ---------------------------------------------------------------------------------- lm

LM_MAX_SESSIONS = 1024
LM_SESSION_TTL_S = 600.0
LM_MAX_ROWS = 4096
LM_MAX_SESSION_ROWS = 16384
"""Rows of all LM sessions of one worker together (its memory budget): an lm-small session
took 22 KB per row after its first step (docs/protocol.md, Limits), so about 360 MB. An
``lm_start`` over the budget gets ``busy`` until sessions end or expire."""


@dataclass
class _Session:
    state: Any
    rows: int
    threads: int
    model: Any  # the model stepping in the session's row blocks
    steps: int = 0
    last_probs: np.ndarray | None = None
    last_used: float = field(default_factory=time.monotonic)


LM_MERGE_MAX_ROWS = 256  # rows of one merged LM step (bounds its latency)


def _row_groups(steps: list[tuple[int, Any, int]], max_rows: int) -> list[list]:
    """Consecutive groups of ``(index, session, t)``, each of at most ``max_rows`` rows in
    all (a session larger than that alone)."""
    groups: list[list] = []
    rows = 0
    for item in steps:
        total = rows + item[1].rows
        if groups and total <= max_rows:
            groups[-1].append(item)
            rows = total
        else:
            groups.append([item])
            rows = item[1].rows
    return groups


def load_lm(spec: str, device: str) -> Servable:
    """A next-symbol model (:class:`~genjscc.core.source.lm.NextSymbolModel`) with per-session
    state, stepped exactly as the local coder steps it.

    Ops (all on one worker per session). LM coding needs bit-identical probabilities. Steps
    of several sessions queued together are merged into one model call for exact models
    (integer arithmetic, e.g. lm-small: every row is computed independently of the others,
    so merging changes nothing by construction); a float model's steps run alone, since a
    GEMM row's floats can depend on the number of rows.

    * ``lm_start`` params ``rows``, ``threads``, ``row_block`` (default 1; ``info`` lists
      the ones the model takes) and ``session`` -> ``start_state(rows)``;
    * ``lm_step`` params ``session``, ``t`` (steps done so far) and tokens ``<i8 [rows]`` ->
      an exact model's integer frequency table ``<i4 [rows, vocab]`` (rows sum to 2**24),
      or a float model's probabilities ``<f4 [rows, vocab]``, computed with
      ``torch.set_num_threads(threads)``
      under ``inference_mode`` by the model's own ``step``; the result's ``merged`` says how
      many sessions shared the model call. A repeated ``t`` (a client retry) returns the same
      probabilities again without stepping;
    * ``lm_end`` params ``session``;
    * ``lm_tokenize`` bytes ``|u1 [L]`` -> symbols ``<i8 [S]``; ``lm_detokenize`` back.
    """
    import torch

    from genjscc.core.source.codec import SMALL_ALIAS, load_model
    from genjscc.core.source.lm import arithmetic_of, coding_threads
    from genjscc.core.source.small import ROW_BLOCKS, SmallByteCoderModel

    _torch_device(device)
    model = load_model(SMALL_ALIAS.get(spec, spec), device)
    mergeable = bool(getattr(model, "arithmetic", "")) and hasattr(model, "step_merged")
    model_block = getattr(model, "row_block", 1)
    row_blocks = ROW_BLOCKS if isinstance(model, SmallByteCoderModel) else (model_block,)
    views = {model_block: model}
    sessions: dict[str, _Session] = {}

    def session_of(params: dict[str, Any]) -> tuple[str, _Session]:
        sid = params.get("session")
        if not isinstance(sid, str) or sid not in sessions:
            raise OpError("unknown_session", f"unknown LM session {sid!r} (expired, closed or "
                          "its worker restarted): start the chunk batch again")
        return sid, sessions[sid]

    def expire(now: float) -> None:
        for sid in [s for s, v in sessions.items() if now - v.last_used > LM_SESSION_TTL_S]:
            del sessions[sid]

    def start(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        rows, threads, sid = params.get("rows"), params.get("threads", 1), params.get("session")
        row_block = params.get("row_block", 1)
        if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= LM_MAX_ROWS:
            raise ValueError(f"rows must be an integer in [1, {LM_MAX_ROWS}], got {rows!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
            raise ValueError(f"threads must be an integer in [1, 256], got {threads!r}")
        if isinstance(row_block, bool) or row_block not in row_blocks:
            raise ValueError(f"row_block must be one of {list(row_blocks)} for this model, "
                             f"got {row_block!r}")
        if not isinstance(sid, str) or not sid:
            raise ValueError("lm_start needs a session id (the broker assigns it)")
        expire(time.monotonic())
        if len(sessions) >= LM_MAX_SESSIONS:
            raise OpError("busy", f"this worker holds {LM_MAX_SESSIONS} LM sessions already; "
                          "retry later (idle sessions expire after "
                          f"{LM_SESSION_TTL_S:g} s)")
        held = sum(v.rows for v in sessions.values())
        if held + rows > LM_MAX_SESSION_ROWS:
            raise OpError("busy", f"this worker's LM sessions hold {held} rows; {rows} more "
                          f"would pass its budget of {LM_MAX_SESSION_ROWS}: retry later or "
                          f"with fewer rows (idle sessions expire after {LM_SESSION_TTL_S:g} s)")
        if row_block not in views:  # one view of the model per row block
            views[row_block] = model.with_row_block(row_block)
        blocked = views[row_block]
        with coding_threads(threads), torch.inference_mode():
            sessions[sid] = _Session(blocked.start_state(rows), rows, threads, blocked)
        return [], {"session": sid}

    def due(arrays: Arrays, params: dict[str, Any]) -> tuple[_Session, int, Arrays | None]:
        """Validate one lm_step: its session, its ``t`` and, for a retry of the step done
        last, the probabilities to send again (else None: the step is to be done)."""
        _sid, s = session_of(params)
        t = params.get("t")
        if isinstance(t, bool) or not isinstance(t, int):
            raise ValueError("lm_step needs an integer t (steps done before this one)")
        if len(arrays) != 1 or arrays[0].shape != (s.rows,) or arrays[0].dtype.kind not in "iu":
            raise ValueError(f"lm_step takes one integer array of shape [{s.rows}] (the "
                             "session's rows)")
        s.last_used = time.monotonic()
        if t == s.steps - 1 and s.last_probs is not None:
            return s, t, [s.last_probs]  # a retry of a step already done
        if t != s.steps:
            raise OpError("out_of_order", f"step t={t} arrived but the session has done "
                          f"{s.steps} steps")
        return s, t, None

    def advance(s: _Session, state: Any, probs: torch.Tensor) -> Arrays:
        s.state = state
        dtype = torch.float32 if torch.is_floating_point(probs) else torch.int32
        s.last_probs = probs.detach().to("cpu", dtype).contiguous().numpy()
        s.steps += 1
        return [s.last_probs]

    def tokens_of(arrays: Arrays) -> torch.Tensor:
        return torch.from_numpy(arrays[0].astype(np.int64)).to(model.device)

    def step(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        s, t, again = due(arrays, params)
        if again is not None:
            return again, {"t": t}
        with coding_threads(s.threads), torch.inference_mode():
            state, probs = s.model.step(s.state, tokens_of(arrays))
        return advance(s, state, probs), {"t": t, "merged": 1}

    def step_many(calls: list[tuple[Arrays, dict[str, Any]]]) -> list[Any]:
        """Several sessions' steps queued together (an exact model): merged into calls of
        up to LM_MERGE_MAX_ROWS rows; each session gets what it would get alone."""
        results: list[Any] = [None] * len(calls)
        todo: dict[tuple, list[tuple[int, _Session, int]]] = {}  # (threads, model) -> steps
        seen: set[int] = set()
        for i, (arrays, params) in enumerate(calls):
            try:
                s, t, again = due(arrays, params)
            except Exception as error:  # sent back as this request's error
                results[i] = error
                continue
            if again is not None:
                results[i] = (again, {"t": t})
            elif id(s) in seen:  # the same session twice (a retry): after the others
                continue
            else:
                seen.add(id(s))
                todo.setdefault((s.threads, id(s.model)), []).append((i, s, t))
        for steps in todo.values():
            blocked = steps[0][1].model
            with coding_threads(steps[0][1].threads), torch.inference_mode():
                for group in _row_groups(steps, LM_MERGE_MAX_ROWS):
                    if len(group) > 1:
                        outs = blocked.step_merged([s.state for _, s, _ in group],
                                                 [tokens_of(calls[i][0]) for i, _, _ in group])
                        for (i, s, t), (state, probs) in zip(group, outs, strict=True):
                            results[i] = (advance(s, state, probs), {"t": t, "merged": len(group)})
        for i, call in enumerate(calls):  # the rest, in their order
            if results[i] is None:
                try:
                    results[i] = step(*call)
                except Exception as error:
                    results[i] = error
        return results

    def end(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        sessions.pop(params.get("session"), None)
        return [], {}

    def tokenize(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        if len(arrays) != 1 or arrays[0].ndim != 1 or arrays[0].dtype != np.uint8:
            raise ValueError("lm_tokenize takes one uint8 array of bytes")
        return [np.asarray(model.tokenize(arrays[0].tobytes()), dtype="<i8")], {}

    def detokenize(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        if len(arrays) != 1 or arrays[0].ndim != 1 or arrays[0].dtype.kind not in "iu":
            raise ValueError("lm_detokenize takes one integer array of symbols")
        data = model.detokenize([int(x) for x in arrays[0]])
        return [np.frombuffer(data, dtype=np.uint8)], {}

    tokenizer = "bytes" if model.vocab_size == 256 and model.bos_id == 256 else "server"
    info = {"model_id": model.model_id, "vocab_size": int(model.vocab_size),
            "bos_id": int(model.bos_id), "max_symbols": int(model.max_symbols),
            "default_batch": int(model.default_batch), "tokenizer": tokenizer,
            "row_block": model_block, "row_blocks": list(row_blocks),
            "torch_version": torch.__version__, "arithmetic": arithmetic_of(model)}
    return Servable(spec, "lm", model.weights_sha256, torch.device(model.device).type, info, {
        "lm_start": Op(start, session="start"),
        "lm_step": Op(step, session="use", call_many=step_many if mergeable else None),
        "lm_end": Op(end, session="end"),
        "lm_tokenize": Op(tokenize),
        "lm_detokenize": Op(detokenize),
    })
