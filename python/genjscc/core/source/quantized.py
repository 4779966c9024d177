"""lm-small in integer arithmetic: the same probabilities on every CPU, GPU, batch and thread.

:class:`QuantizedByteLM` is a :class:`~genjscc.core.source.small.SmallByteLM` (LSTM)
converted by :func:`quantize_small_lm` into integers (rules in
:mod:`genjscc.core.source.fixed_point`):

* the first layer's input projection plus both biases is a ``(257, G H)`` Q12 table, one row
  per input byte (exact: no product is computed while coding);
* recurrent and deeper-layer weights and the head are int8 per output row, with Q24 rescaling
  multipliers; hidden states are int8 (``h_q = round(127 h)``), the LSTM cell state Q12;
* sigmoid, tanh and exp are integer tables stored in the file;
* :meth:`QuantizedByteLM.step` returns the coder's integer frequency table directly.

Every row of a step depends only on that row's state and input, through exact integer
operations, so padding, merging sessions, batch shapes and thread counts change nothing.

File format ``genjscc-lm-byte-int/1``: safetensors of integer tensors, with the float
model's configuration and the arithmetic's constants in the metadata.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch

from genjscc.core.source import _lm_native
from genjscc.core.source import fixed_point as fp
from genjscc.core.source.small import BOS, BYTE_VOCAB, CELLS, SmallByteLM, SmallLMConfig
from genjscc.core.weights_file import WeightsFormat, is_format, read_weights, save_weights
from genjscc.errors import GenjsccError

FORMAT = "genjscc-lm-byte-int/1"  # LSTM gate rows in the order i, f, o, g
ARITHMETIC = "int8-lut/1"
"""Name of this arithmetic, stored in containers: any machine computing it decodes."""
WEIGHTS_FORMAT = WeightsFormat("lm", "integer byte LM",
                               {"format": (FORMAT,), "arithmetic": (ARITHMETIC,)},
                               config_key="genjscc_config")
"""How :func:`save_quantized_lm` tags its files."""


class QuantizedByteLM:
    """Integer-only next-byte model (see the module docstring).

    The state is an int64 tensor ``(2, layers, B, H)``: plane 0 holds the int8-range hidden
    states, plane 1 the Q12 cell states. LSTM models only.
    """

    def __init__(self, config: SmallLMConfig, tensors: dict[str, torch.Tensor]) -> None:
        self.config = config
        self.t = tensors
        self.device = tensors["input_table"].device
        self._float: dict[str, torch.Tensor] = {}  # the int8 weights as float32, for GEMMs
        self._native: _lm_native.NativeStep | None = None  # packed for the CPU kernel
        # stored small, computed in int64
        self._int64 = {name: tensors[name].to(torch.int64)
                       for name in ("initial_state", "sigmoid", "tanh", "input_table")}

    def to(self, device: torch.device | str) -> QuantizedByteLM:
        return QuantizedByteLM(self.config, {k: v.to(device) for k, v in self.t.items()})

    def _weight(self, name: str) -> torch.Tensor:
        """int8 weights ``(out, in)`` as a contiguous float32 ``(in, out)`` for exact GEMMs."""
        if name not in self._float:
            self._float[name] = self.t[name].t().to(torch.float32).contiguous()
        return self._float[name]

    def check_device(self) -> None:
        """Raise unless float32 GEMMs of this model's sizes are exact on its device."""
        fp.check_exact_matmul(self.config.hidden, self.device)

    def initial_state(self, batch: int) -> torch.Tensor:
        init = self._int64["initial_state"]  # (2, layers, H)
        return init[:, :, None, :].expand(-1, -1, batch, -1).contiguous()

    def _project(self, h_q: torch.Tensor, name: str) -> torch.Tensor:
        """Q-scaled product of int8-range hidden states with an int8 weight matrix."""
        acc = fp.exact_matmul(h_q.to(torch.float32), self._weight(name))
        return fp.rescale(acc, self.t[name + ".mult"])

    def step(self, state: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One byte per row (``(B,)`` int64, 0..256) -> new state, frequency table ``(B, 256)``
        (int64, rows summing to ``2**24``, entries >= 1).

        On the CPU the native kernel (lib/lm_kernel.c) computes it where it is built, with
        as many threads as torch has; elsewhere, or with ``GENJSCC_LM_KERNEL=torch``, the
        torch step does. Both compute the same integers."""
        if self._runs_native(state, inputs):
            if self._native is None:
                self._native = _lm_native.NativeStep(self.config.layers, self.config.hidden,
                                                     self.t)
            return self._native.step(state, inputs, torch.get_num_threads())
        if state.device.type == "cpu" and not _lm_native.available():
            _lm_native.warn_fallback()
        return self.torch_step(state, inputs)

    def _runs_native(self, state: torch.Tensor, inputs: torch.Tensor) -> bool:
        c = self.config
        return (_lm_native.available() and c.layers <= _lm_native.MAX_LAYERS
                and state.device.type == "cpu" and inputs.device.type == "cpu"
                and state.dtype == torch.int64 and inputs.dtype == torch.int64
                and inputs.ndim == 1
                and tuple(state.shape) == (2, c.layers, inputs.shape[0], c.hidden))

    def torch_step(self, state: torch.Tensor, inputs: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`step` in torch operations (any device; float32 GEMMs of exact integers)."""
        sig, tanh = self._int64["sigmoid"], self._int64["tanh"]
        x = self._int64["input_table"].index_select(0, inputs)
        new_h, new_c = [], []
        for layer in range(self.config.layers):
            if layer:
                x = self._project(new_h[-1], f"w_ih{layer}") + self.t[f"b_ih{layer}"]
            h = state[0, layer]
            hh = self._project(h, f"w_hh{layer}")
            pre = x + hh  # gates in the order i, f, o, g (sigmoid on the first three)
            hidden = pre.shape[1] // 4
            i, f, o = fp.lookup(sig, pre[:, :3 * hidden]).chunk(3, dim=1)
            g = fp.lookup(tanh, pre[:, 3 * hidden:])
            c = (f * state[1, layer] + (1 << (fp.OUT_FRAC - 1))) >> fp.OUT_FRAC
            shift = 2 * fp.OUT_FRAC - fp.GATE_FRAC  # i * g is Q30: back to Q12, rounded
            c = (c + ((i * g + (1 << (shift - 1))) >> shift)).clamp_(-fp.CELL_LIMIT,
                                                                     fp.CELL_LIMIT)
            h = _to_act(o * fp.lookup(tanh, c))
            new_c.append(c)
            new_h.append(h)
        logits = self._project(new_h[-1], "head") + self.t["head.bias"]
        state = torch.stack([torch.stack(new_h), torch.stack(new_c)])
        return state, fp.frequencies(logits, self.t["exp"])

    def num_parameters(self) -> int:
        float_model = SmallByteLM(self.config)
        return sum(p.numel() for p in float_model.parameters())

    def macs_per_byte(self) -> int:
        return SmallByteLM(self.config).macs_per_byte()

    def describe(self) -> str:
        c = self.config
        init = "learned initial state" if c.learn_init else "zero initial state"
        return (f"{c.cell.upper()} x{c.layers} H={c.hidden}, embedding {c.embed}, {init}, "
                f"integer arithmetic ({ARITHMETIC}: int8 weights and states)")


def _to_act(q30: torch.Tensor) -> torch.Tensor:
    """A Q30 value in [-1, 1] -> int8-range hidden state ``round(127 x)``."""
    return (q30 * fp.ACT_MAX + (1 << 29)) >> 30


def quantize_small_lm(model: SmallByteLM) -> QuantizedByteLM:
    """Convert a trained float model into integers (round to nearest, per-row int8)."""
    c = model.config
    if c.cell != "lstm":
        raise GenjsccError(f"integer coding is implemented for LSTM models, not {c.cell!r}: "
                           "train with cell='lstm'")
    if c.hidden > fp.MAX_EXACT_K:
        raise GenjsccError(f"hidden width {c.hidden} is above {fp.MAX_EXACT_K}: its products "
                           "would not be exact in float32")
    rnn = model.rnn
    q12 = float(1 << fp.GATE_FRAC)
    # PyTorch's gate rows are i, f, g, o; ours i, f, o, g (one sigmoid lookup for three)
    h = c.hidden
    order = torch.cat([torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h),
                       torch.arange(2 * h, 3 * h)])
    with torch.no_grad():
        table = (model.embed.weight.double() @ rnn.weight_ih_l0.double().t()
                 + rnn.bias_ih_l0.double() + rnn.bias_hh_l0.double())
        t: dict[str, torch.Tensor] = {
            "input_table": torch.round(table[:, order] * q12).to(torch.int32)}
        for layer in range(c.layers):
            names = [("w_hh", f"weight_hh_l{layer}")]
            if layer:
                names.append(("w_ih", f"weight_ih_l{layer}"))
                bias = getattr(rnn, f"bias_ih_l{layer}").double() \
                    + getattr(rnn, f"bias_hh_l{layer}").double()
                t[f"b_ih{layer}"] = torch.round(bias[order] * q12).to(torch.int64)
            for short, name in names:
                q, scale = fp.quantize_rows(getattr(rnn, name)[order])
                t[f"{short}{layer}"] = q
                t[f"{short}{layer}.mult"] = fp.multipliers(scale, fp.GATE_FRAC)
        q, scale = fp.quantize_rows(model.head.weight)
        t["head"] = q
        t["head.mult"] = fp.multipliers(scale, fp.LOGIT_FRAC)
        t["head.bias"] = torch.round(model.head.bias.double() * (1 << fp.LOGIT_FRAC)
                                     ).to(torch.int64)
        init = model.initial_state(1).detach().double()  # (2, layers, 1, H): h then c
        t["initial_state"] = torch.stack([
            torch.round(init[0, :, 0] * fp.ACT_MAX).clamp(-fp.ACT_MAX, fp.ACT_MAX),
            torch.round(init[1, :, 0] * q12).clamp(-fp.CELL_LIMIT, fp.CELL_LIMIT),
        ]).to(torch.int64)
        t["sigmoid"], t["tanh"] = fp.gate_tables()
        t["exp"] = fp.exp_table()
    return QuantizedByteLM(c, t)


def save_quantized_lm(model: QuantizedByteLM, path: str | Path,
                      extra: dict[str, str] | None = None) -> None:
    """Write the integer model as safetensors (integers only) with its configuration."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.t.items()}
    save_weights(tensors, path, WEIGHTS_FORMAT, model.config, extra)


def is_quantized_file(path: str | Path) -> bool:
    """Whether ``path`` is a safetensors file in this module's format."""
    return is_format(path, WEIGHTS_FORMAT)


def load_quantized_lm(path: str | Path, device: torch.device | str = "cpu") -> QuantizedByteLM:
    """Read a file written by :func:`save_quantized_lm`; ZooError (a GenjsccError) if there
    is no such file or it is not one, GenjsccError if its tensors do not fit the arithmetic."""
    path = Path(path)
    metadata, tensors = read_weights(path, WEIGHTS_FORMAT)
    try:
        config = SmallLMConfig(**json.loads(metadata["genjscc_config"]))
    except GenjsccError:
        raise
    except Exception as error:  # a crafted or foreign file: say which file and why
        raise GenjsccError(f"cannot load integer LM weights {path}: {error}") from error
    _check_tensors(config, tensors, path)
    model = QuantizedByteLM(config, tensors).to(device)
    model.check_device()
    return model


def _check_tensors(config: SmallLMConfig, t: dict[str, torch.Tensor], path: Path) -> None:
    """Shapes and dtypes a step relies on, so a crafted file fails here, not mid-coding."""
    gh, h = CELLS[config.cell] * config.hidden, config.hidden
    want = {"input_table": ((BYTE_VOCAB + 1, gh), torch.int32),
            "head": ((BYTE_VOCAB, h), torch.int8), "head.mult": ((BYTE_VOCAB,), torch.int64),
            "head.bias": ((BYTE_VOCAB,), torch.int64),
            "sigmoid": ((fp.LUT_SIZE,), torch.int32), "tanh": ((fp.LUT_SIZE,), torch.int32),
            "exp": ((fp.EXP_SPAN << fp.LOGIT_FRAC,), torch.int64),
            "initial_state": ((2, config.layers, h), torch.int64)}
    for layer in range(config.layers):
        want[f"w_hh{layer}"] = ((gh, h), torch.int8)
        want[f"w_hh{layer}.mult"] = ((gh,), torch.int64)
        if layer:
            want[f"w_ih{layer}"] = ((gh, h), torch.int8)
            want[f"w_ih{layer}.mult"] = ((gh,), torch.int64)
            want[f"b_ih{layer}"] = ((gh,), torch.int64)
    for name, (shape, dtype) in want.items():
        tensor = t.get(name)
        if tensor is None or tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise GenjsccError(f"{path}: tensor {name!r} missing or not {dtype} {shape}")
    if config.hidden > fp.MAX_EXACT_K:
        raise GenjsccError(f"{path}: hidden width {config.hidden} above {fp.MAX_EXACT_K}")
    _check_ranges(t, path)


# Value bounds of the tensors of a well-made file (quantize_small_lm stays far inside them):
# with them no int64 expression of a step can overflow, in torch or in lm_kernel.c.
_RANGES = {"sigmoid": (0, 1 << fp.OUT_FRAC), "tanh": (-(1 << fp.OUT_FRAC), 1 << fp.OUT_FRAC),
           "exp": (0, 1 << fp.EXP_FRAC)}
_BOUND = 1 << 31  # multipliers and biases: |value| < 2**31


def _check_ranges(t: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a file whose values break the arithmetic's bounds (a crafted file)."""
    for name, tensor in t.items():
        low, high = _RANGES.get(name, (-_BOUND + 1, _BOUND - 1))
        if tensor.dtype == torch.int8:  # -128 would break the float32 bound K * 127 * 127
            low, high = -fp.ACT_MAX, fp.ACT_MAX
        if name == "initial_state":
            h_ok = bool((tensor[0].abs() <= fp.ACT_MAX).all())
            c_ok = bool((tensor[1].abs() <= fp.CELL_LIMIT).all())
            if not (h_ok and c_ok):
                raise GenjsccError(f"{path}: initial_state out of range (hidden states within "
                                   f"+-{fp.ACT_MAX}, cells within +-{fp.CELL_LIMIT})")
        elif tensor.numel() and not (low <= int(tensor.min()) and int(tensor.max()) <= high):
            raise GenjsccError(f"{path}: tensor {name!r} has values outside [{low}, {high}]")
    if int(t["exp"][0]) < 1:
        raise GenjsccError(f"{path}: the exp table must start with a positive entry")


class QuantizedCoderModel:
    """:class:`~genjscc.core.source.lm.NextSymbolModel` over :class:`QuantizedByteLM`.

    ``step`` returns integer frequency tables (``exact`` is True): the coder uses them as they
    are, and a server may merge any sessions' rows into one call.
    """

    vocab_size = BYTE_VOCAB
    bos_id = BOS
    max_symbols = 1 << 30  # recurrent: no context limit
    default_batch = 64
    arithmetic = ARITHMETIC

    def __init__(self, model: QuantizedByteLM, model_id: str, weights_sha256: str) -> None:
        self.model = model
        self.device = model.device
        self.model_id = model_id
        self.weights_sha256 = weights_sha256

    def start_state(self, batch: int) -> torch.Tensor:
        return self.model.initial_state(batch)

    def step(self, state: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            state, freqs = self.model.step(state, tokens.to(self.device))
            return state, freqs.cpu()

    def tokenize(self, data: bytes) -> list[int]:
        return list(data)

    def detokenize(self, symbols: list[int]) -> bytes:
        return bytes(symbols)

    def step_merged(self, states: list[torch.Tensor], tokens: list[torch.Tensor]
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Step several independent row groups (a server's LM sessions) in one call: each
        group gets exactly what it would get alone (integer arithmetic, rows independent)."""
        sizes = [int(t.shape[0]) for t in tokens]
        state, freqs = self.step(torch.cat(states, dim=-2), torch.cat(tokens))
        bounds = [0, *itertools.accumulate(sizes)]
        return [(state[..., a:b, :].contiguous(), freqs[a:b])
                for a, b in itertools.pairwise(bounds)]
