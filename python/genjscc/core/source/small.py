"""Our own small byte-level language model: a GRU that steps cheaply on a CPU.

Why a recurrent model: decoding is autoregressive, one byte per step for every chunk of a
micro-batch. A GRU step costs ``3 H (E + H)`` multiply-adds per layer whatever the position in
the chunk, while a transformer with a KV cache also pays attention over the whole context and
several times more small kernels per step. With ``H = 512`` one CPU thread steps 64 chunks at
about 20 k bytes/s (measured with torch 2.13).

Symbols: the 256 byte values. The begin-of-chunk input is an extra embedding row (index 256)
that is never coded. Training uses the fused ``nn.GRU`` over whole sequences; coding uses
:meth:`SmallByteLM.step` (``torch.gru_cell`` on the same weights) on both sides.

Weights are safetensors with the configuration in the file's metadata
(``genjscc_config``: JSON of :class:`SmallLMConfig`), so a file is self-describing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from genjscc.errors import GenjsccError

BYTE_VOCAB = 256
BOS = 256
FORMAT = "genjscc-lm-byte-gru/1"


@dataclass(frozen=True)
class SmallLMConfig:
    """Architecture of :class:`SmallByteLM`.

    Attributes:
        embed: input embedding width.
        hidden: GRU state width ``H`` (cost per byte grows as ``H**2``).
        layers: stacked GRU layers.
    """

    embed: int = 64
    hidden: int = 512
    layers: int = 1

    def __post_init__(self) -> None:
        for name in ("embed", "hidden", "layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SmallLMConfig.{name} must be a positive integer, got {value!r}")


class SmallByteLM(nn.Module):
    """Byte-level GRU language model: embedding, stacked GRU, linear head to 256 logits."""

    def __init__(self, config: SmallLMConfig | None = None) -> None:
        super().__init__()
        self.config = config or SmallLMConfig()
        c = self.config
        self.embed = nn.Embedding(BYTE_VOCAB + 1, c.embed)
        self.rnn = nn.GRU(c.embed, c.hidden, num_layers=c.layers, batch_first=True)
        self.head = nn.Linear(c.hidden, BYTE_VOCAB)

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: logits ``(B, T, 256)`` for inputs ``(B, T)`` (int64 in [0, 256]).

        Returns the logits and the final state ``(layers, B, H)``.
        """
        out, state = self.rnn(self.embed(inputs), state)
        return self.head(out), state

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero state ``(layers, batch, H)`` on the model's device."""
        c = self.config
        return torch.zeros(c.layers, batch, c.hidden, device=self.head.weight.device)

    def step(self, state: torch.Tensor, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coding path: one byte per row (``(B,)`` int64) -> new state, logits ``(B, 256)``."""
        x = self.embed(inputs)
        new_state = []
        for layer in range(self.config.layers):
            x = torch.gru_cell(
                x, state[layer],
                getattr(self.rnn, f"weight_ih_l{layer}"), getattr(self.rnn, f"weight_hh_l{layer}"),
                getattr(self.rnn, f"bias_ih_l{layer}"), getattr(self.rnn, f"bias_hh_l{layer}"))
            new_state.append(x)
        return torch.stack(new_state), self.head(x)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_byte(self) -> int:
        """Multiply-adds of one coding step (GRU layers and head; the embedding is a lookup)."""
        c = self.config
        gru = sum(3 * c.hidden * ((c.embed if i == 0 else c.hidden) + c.hidden)
                  for i in range(c.layers))
        return gru + c.hidden * BYTE_VOCAB


def save_small_lm(model: SmallByteLM, path: str | Path, extra: dict[str, str] | None = None
                  ) -> None:
    """Write the weights (float32) and the configuration as safetensors metadata."""
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous()
               for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "genjscc_config": json.dumps(asdict(model.config))}
    metadata.update(extra or {})
    save_file(tensors, str(path), metadata=metadata)


def load_small_lm(path: str | Path, device: torch.device | str = "cpu") -> SmallByteLM:
    """Read a file written by :func:`save_small_lm`; GenjsccError if it is not one."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise GenjsccError(f"small LM weights {path} not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise GenjsccError(f"{path} is not a genjscc byte-GRU LM (format "
                               f"{metadata.get('format')!r}, expected {FORMAT!r})")
        config = SmallLMConfig(**json.loads(metadata["genjscc_config"]))
        model = SmallByteLM(config)
        model.load_state_dict(load_file(str(path)))
    except GenjsccError:
        raise
    except Exception as error:  # a truncated or foreign file: say which file and why
        raise GenjsccError(f"cannot load small LM weights {path}: {error}") from error
    return model.to(device).eval()


class SmallByteCoderModel:
    """:class:`~genjscc.core.source.lm.NextSymbolModel` over :class:`SmallByteLM`.

    Args:
        model: the network.
        model_id: identifier stored in containers (the zoo name, or ``file:NAME``).
        weights_sha256: sha256 of the weights file.
        device: where to run; ``None`` keeps the model's device.
    """

    vocab_size = BYTE_VOCAB
    bos_id = BOS
    max_symbols = 1 << 30  # recurrent: no context limit
    default_batch = 64

    def __init__(self, model: SmallByteLM, model_id: str, weights_sha256: str,
                 device: torch.device | str | None = None) -> None:
        self.device = torch.device(device) if device is not None else model.head.weight.device
        self.model = model.to(self.device).eval()
        self.model_id = model_id
        self.weights_sha256 = weights_sha256

    def start_state(self, batch: int) -> torch.Tensor:
        return self.model.initial_state(batch)

    def step(self, state: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        state, logits = self.model.step(state, tokens.to(self.device))
        return state, torch.softmax(logits.float(), dim=-1).cpu()

    def tokenize(self, data: bytes) -> list[int]:
        return list(data)

    def detokenize(self, symbols: list[int]) -> bytes:
        return bytes(symbols)
