"""Our own small byte-level language model: a recurrent network that steps cheaply on a CPU.

Why recurrent: decoding is autoregressive, one byte per step for every chunk of a micro-batch.
A GRU or LSTM step costs a fixed ``G H**2`` multiply-adds per layer (``G`` = 3 gates for a GRU,
4 for an LSTM) whatever the position in the chunk, while a transformer with a KV cache also pays
attention over the whole context and many more small kernels per step (measured in
docs/lm-compression.md: the recurrent cells win at equal coding speed).

Symbols: the 256 byte values. The begin-of-chunk input is an extra embedding row (index 256)
that is never coded. Every chunk starts from the same state: zeros, or a learned initial state
(``learn_init``), which spends fewer bits on the first bytes of each chunk.

Two computations of the same function:

* training: the fused ``nn.GRU`` / ``nn.LSTM`` over whole sequences;
* coding (:meth:`SmallByteLM.step`, used by encoder *and* decoder): the first layer's input
  projection ``embed @ W_ih + b_ih`` is a 257-row table looked up per byte (it depends on the
  byte only), so the input width costs nothing while coding; the gates are computed by hand
  with one ``addmm`` per layer. Its floats differ from the training path by rounding only; the
  coder never mixes the two.

Weights are safetensors with the configuration in the file's metadata
(``genjscc_config``: JSON of :class:`SmallLMConfig`), so a file is self-describing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from genjscc.core.source.fixed_point import fake_quantize_rows, fake_quantize_states
from genjscc.core.weights_file import WeightsFormat, read_weights, save_weights, state_tensors
from genjscc.errors import GenjsccError

BYTE_VOCAB = 256
BOS = 256
FORMAT = "genjscc-lm-byte-rnn/2"
FORMATS_READ = (FORMAT, "genjscc-lm-byte-gru/1")  # /1: GRU without a learned initial state
WEIGHTS_FORMAT = WeightsFormat("lm", "byte-level LM", {"format": FORMATS_READ},
                               config_key="genjscc_config")
"""How :func:`save_small_lm` tags its files (it reads :data:`FORMATS_READ`)."""
CELLS = {"gru": 3, "lstm": 4}  # cell -> gates per layer
STEP_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
ROW_BLOCK = 32  # rows: float coding steps are padded to a multiple of this (see the coder model)
ROW_BLOCKS = tuple(1 << k for k in range(9))  # 1 ... 256: the row blocks a float step takes


@dataclass(frozen=True)
class SmallLMConfig:
    """Architecture of :class:`SmallByteLM`.

    Attributes:
        embed: input embedding width (free while coding: the first layer reads a table).
        hidden: state width ``H`` (cost per byte grows as ``H**2``).
        layers: stacked recurrent layers.
        cell: ``"gru"`` or ``"lstm"``.
        learn_init: a trained initial state instead of zeros at the start of every chunk.
        step_dtype: ``"float32"`` or ``"bfloat16"``: the operand type of the coding step's
            matrix products (accumulated and followed by float32 gates either way). bfloat16
            is about 3 times faster on CPUs with AMX or AVX512-BF16 and is what ``genjscc train
            lm --bf16`` trains with; it is part of the model (stored in the weights file).
    """

    embed: int = 64
    hidden: int = 512
    layers: int = 1
    cell: str = "gru"
    learn_init: bool = False
    step_dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("embed", "hidden", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SmallLMConfig.{name} must be a positive integer, got {value!r}")
        if self.cell not in CELLS:
            raise ValueError(f"SmallLMConfig.cell must be one of {sorted(CELLS)}, "
                             f"got {self.cell!r}")
        if not isinstance(self.learn_init, bool):
            raise ValueError(f"SmallLMConfig.learn_init must be a bool, got {self.learn_init!r}")
        if self.step_dtype not in STEP_DTYPES:
            raise ValueError(f"SmallLMConfig.step_dtype must be one of {sorted(STEP_DTYPES)}, "
                             f"got {self.step_dtype!r}")


class SmallByteLM(nn.Module):
    """Byte-level recurrent LM: embedding, stacked GRU or LSTM, linear head to 256 logits.

    The state is a tensor ``(layers, B, H)`` for a GRU and ``(2, layers, B, H)`` (``h`` then
    ``c``) for an LSTM.
    """

    def __init__(self, config: SmallLMConfig | None = None) -> None:
        super().__init__()
        self.config = config or SmallLMConfig()
        c = self.config
        self.embed = nn.Embedding(BYTE_VOCAB + 1, c.embed)
        rnn = nn.GRU if c.cell == "gru" else nn.LSTM
        self.rnn = rnn(c.embed, c.hidden, num_layers=c.layers, batch_first=True)
        self.head = nn.Linear(c.hidden, BYTE_VOCAB)
        if c.learn_init:
            planes = 1 if c.cell == "gru" else 2
            self.init_state = nn.Parameter(torch.zeros(planes, c.layers, c.hidden))
        self.fake_quant = False  # quantization-aware training (see forward)
        self._table: torch.Tensor | None = None
        self._step_weights: list[tuple[torch.Tensor, ...]] | None = None

    @property
    def is_lstm(self) -> bool:
        return self.config.cell == "lstm"

    def initial_state(self, batch: int) -> torch.Tensor:
        """The state every chunk starts from, for ``batch`` rows, on the model's device."""
        c = self.config
        planes = 1 if c.cell == "gru" else 2
        if c.learn_init:
            state = self.init_state[:, :, None, :].expand(planes, c.layers, batch, c.hidden)
        else:
            state = torch.zeros(planes, c.layers, batch, c.hidden,
                                device=self.head.weight.device)
        return state.contiguous() if self.is_lstm else state[0].contiguous()

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: logits ``(B, T, 256)`` for inputs ``(B, T)`` (int64 in [0, 256]).

        ``state`` defaults to :meth:`initial_state`. Returns the logits and the final state
        (same layout as the state), for truncated back-propagation through time.
        """
        if state is None:
            state = self.initial_state(inputs.shape[0])
        hx = (state[0], state[1]) if self.is_lstm else state
        if not self.fake_quant:
            out, final = self.rnn(self.embed(inputs), hx)
            final = torch.stack(final) if self.is_lstm else final
            return self.head(out), final
        # quantization-aware training: the weights the integer model will use (int8 per
        # row) and the head reading int8 hidden states; the recurrence inside the fused
        # kernel keeps float states (the integer step rounds them: measured lossless)
        weights = {name: fake_quantize_rows(p) for name, p in self.rnn.named_parameters()
                   if name.startswith("weight_hh") or
                   (name.startswith("weight_ih") and not name.endswith("l0"))}
        out, final = functional_call(self.rnn, weights, (self.embed(inputs), hx))
        final = torch.stack(final) if self.is_lstm else final
        logits = F.linear(fake_quantize_states(out), fake_quantize_rows(self.head.weight),
                          self.head.bias)
        return logits, final

    def train(self, mode: bool = True) -> SmallByteLM:
        # weights may change: rebuild the coding tables on the next step
        self._table = self._step_weights = None
        return super().train(mode)

    def input_table(self) -> torch.Tensor:
        """``(257, G H)`` float32: the first layer's input projection of every byte."""
        if self._table is None or self.training:
            with torch.no_grad():
                table = torch.addmm(self.rnn.bias_ih_l0, self.embed.weight,
                                    self.rnn.weight_ih_l0.t())
            if self.training:
                return table
            self._table = table
        return self._table

    def step_weights(self) -> list[tuple[torch.Tensor, ...]]:
        """Per layer ``(W_ih^T, b_ih, W_hh^T, b_hh)`` in the step's operand type, then the
        head's ``(W^T, b)``: contiguous copies made once (the coding path's weights)."""
        if self._step_weights is None or self.training:
            dtype = STEP_DTYPES[self.config.step_dtype]
            with torch.no_grad():
                def prep(t: torch.Tensor) -> torch.Tensor:
                    return t.detach().t().contiguous().to(dtype)

                weights = [(prep(getattr(self.rnn, f"weight_ih_l{i}")),
                            getattr(self.rnn, f"bias_ih_l{i}").detach().to(dtype),
                            prep(getattr(self.rnn, f"weight_hh_l{i}")),
                            getattr(self.rnn, f"bias_hh_l{i}").detach().to(dtype))
                           for i in range(self.config.layers)]
                weights.append((prep(self.head.weight), self.head.bias.detach().to(dtype)))
            if self.training:
                return weights
            self._step_weights = weights
        return self._step_weights

    def step(self, state: torch.Tensor, inputs: torch.Tensor, row_block: int = 1
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Coding path: one byte per row (``(B,)`` int64) -> new state, logits ``(B, 256)``.

        ``row_block``: every matrix product runs on ``B`` rounded up to a multiple of it
        (zero rows appended, their results dropped), so a few GEMM row counts serve every
        ``B`` (see :class:`SmallByteCoderModel`).
        """
        weights = self.step_weights()

        def addmm(bias: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
            pad = -x.shape[0] % row_block
            if not pad:
                return torch.addmm(bias, x, weight).float()
            padded = torch.cat([x, x.new_zeros(pad, x.shape[1])])
            return torch.addmm(bias, padded, weight)[:x.shape[0]].float()

        dtype = STEP_DTYPES[self.config.step_dtype]
        x_proj = self.input_table().index_select(0, inputs)
        h_all = state[0] if self.is_lstm else state
        new_h, new_c = [], []
        for layer in range(self.config.layers):
            w_ih, b_ih, w_hh, b_hh = weights[layer]
            if layer:
                x_proj = addmm(b_ih, new_h[-1].to(dtype), w_ih)
            h = h_all[layer]
            hh = addmm(b_hh, h.to(dtype), w_hh)
            if self.is_lstm:
                i, f, g, o = (x_proj + hh).chunk(4, dim=1)
                c = torch.sigmoid(f) * state[1][layer] + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                new_c.append(c)
            else:  # PyTorch's GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
                xr, xz, xn = x_proj.chunk(3, dim=1)
                hr, hz, hn = hh.chunk(3, dim=1)
                r = torch.sigmoid(xr + hr)
                z = torch.sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                h = n + z * (h - n)
            new_h.append(h)
        w_head, b_head = weights[-1]
        logits = addmm(b_head, new_h[-1].to(dtype), w_head)
        if self.is_lstm:
            return torch.stack([torch.stack(new_h), torch.stack(new_c)]), logits
        return torch.stack(new_h), logits

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_byte(self) -> int:
        """Multiply-adds of one coding step (recurrent layers and head; the input table and
        the embedding are lookups)."""
        c = self.config
        gates = CELLS[c.cell]
        rnn = sum(gates * c.hidden * ((c.hidden if i else 0) + c.hidden) for i in range(c.layers))
        return rnn + c.hidden * BYTE_VOCAB

    def describe(self) -> str:
        """One line: ``GRU x1 H=768, learned initial state``."""
        c = self.config
        init = "learned initial state" if c.learn_init else "zero initial state"
        return (f"{c.cell.upper()} x{c.layers} H={c.hidden}, embedding {c.embed}, {init}, "
                f"{c.step_dtype} coding step")


def save_small_lm(model: SmallByteLM, path: str | Path, extra: dict[str, str] | None = None
                  ) -> None:
    """Write the weights and the configuration as safetensors metadata.

    Weights are stored in the step's operand type (float32, or bfloat16 for a bfloat16
    coding step, which halves the file and loses nothing the step uses: its products read
    bfloat16 weights anyway); loading turns them into float32 parameters.
    """
    tensors = state_tensors(model, STEP_DTYPES[model.config.step_dtype])
    save_weights(tensors, path, WEIGHTS_FORMAT, model.config, extra)


def load_small_lm(path: str | Path, device: torch.device | str = "cpu") -> SmallByteLM:
    """Read a file written by :func:`save_small_lm`; ZooError (a GenjsccError) if there is
    no such file or it is not one, GenjsccError if its tensors do not fit its configuration."""
    metadata, tensors = read_weights(path, WEIGHTS_FORMAT)
    try:
        config = SmallLMConfig(**json.loads(metadata["genjscc_config"]))
        model = SmallByteLM(config)
        model.load_state_dict({k: v.float() for k, v in tensors.items()})
    except GenjsccError:
        raise
    except Exception as error:  # a crafted or foreign file: say which file and why
        raise GenjsccError(f"cannot load small LM weights {path}: {error}") from error
    return model.to(device).eval()


class SmallByteCoderModel:
    """:class:`~genjscc.core.source.lm.NextSymbolModel` over a *float* :class:`SmallByteLM`
    (a file written with ``genjscc train lm --float``, or an older lm-small): its
    probabilities are reproducible only on machines with the same float arithmetic (see
    :mod:`genjscc.core.source.lm`). The shipped lm-small is integer
    (:mod:`genjscc.core.source.quantized`) and decodes anywhere.

    Every step's matrix products run on a row count padded with zero rows up to a multiple of
    ``row_block`` (containers store it; older genjscc versions coded in blocks of 32 rows so
    that a server could merge sessions, and their containers decode the same way here).

    Args:
        model: the network.
        model_id: identifier stored in containers (the zoo name, or ``file:NAME``).
        weights_sha256: sha256 of the weights file.
        device: where to run; ``None`` keeps the model's device.
        row_block: rows of every step are padded to a multiple of this (a power of two;
            1 = no padding, how containers without a row block in their header were coded).
    """

    vocab_size = BYTE_VOCAB
    bos_id = BOS
    max_symbols = 1 << 30  # recurrent: no context limit
    default_batch = 64

    def __init__(self, model: SmallByteLM, model_id: str, weights_sha256: str,
                 device: torch.device | str | None = None, row_block: int = ROW_BLOCK) -> None:
        if row_block not in ROW_BLOCKS:
            raise ValueError(f"row_block must be a power of two in [1, {ROW_BLOCKS[-1]}], "
                             f"got {row_block!r}")
        self.device = torch.device(device) if device is not None else model.head.weight.device
        self.model = model.to(self.device).eval()
        self.model_id = model_id
        self.weights_sha256 = weights_sha256
        self.row_block = row_block

    def with_row_block(self, row_block: int) -> SmallByteCoderModel:
        """The same network stepping in blocks of ``row_block`` rows (shares the weights)."""
        if row_block == self.row_block:
            return self
        return SmallByteCoderModel(self.model, self.model_id, self.weights_sha256,
                                   self.device, row_block)

    def start_state(self, batch: int) -> torch.Tensor:
        with torch.inference_mode():
            return self.model.initial_state(batch)

    def step(self, state: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            state, logits = self.model.step(state, tokens.to(self.device), self.row_block)
            return state, torch.softmax(logits.float(), dim=-1).cpu()

    def tokenize(self, data: bytes) -> list[int]:
        return list(data)

    def detokenize(self, symbols: list[int]) -> bytes:
        return bytes(symbols)
