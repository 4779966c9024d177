"""The ``"ecct"`` entry of :func:`genjscc.core.fec.decoders.make_decoder`.

``make_decoder("ecct", code, model=MODEL)`` (``genjscc ber --decoder ecct --model MODEL``):
MODEL is a zoo name (``genjscc models``) or a ``.safetensors`` path written by
:func:`genjscc.core.ecct.model.save_ecct`; without it, the zoo model ``ecct-<code name>`` (lower
case) is used when one is shipped. The model's ``H`` must equal ``code.H``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from genjscc.core.ecct.model import ECCTDecoder, load_ecct


def zoo_name(code_name: str) -> str:
    """Zoo name of the shipped ECCT for a code: ``"ecct-" + code_name.lower()``."""
    return f"ecct-{code_name.lower()}"


def resolve_model_path(model: str | Path | None, code: Any) -> Path:
    """Weights file of ``model`` (zoo name or file path; None: the code's shipped model).

    Zoo models are checked against their manifest sha256 (``GenjsccError`` on mismatch).
    """
    from genjscc.zoo import get_model, list_models

    if model is not None and Path(str(model)).suffix == ".safetensors":
        path = Path(str(model))
        if not path.is_file():
            raise ValueError(f"ECCT model file {path} does not exist")
        return path
    name = str(model) if model is not None else zoo_name(code.name)
    known = {e.name for e in list_models() if e.kind == "ecct"}
    if name not in known:
        hint = ", ".join(sorted(known)) or "none shipped"
        raise ValueError(f"no ECCT model {name!r}; pass --model (-O model=) with a zoo name "
                         f"({hint}) or a .safetensors file trained by `genjscc train ecct`")
    entry = get_model(name)
    entry.verify()
    return entry.path


def build_decoder(code: Any, num_iters: int = 50, model: str | Path | None = None,
                  device: str | torch.device | None = None,
                  batch_size: int = 4096) -> ECCTDecoder:
    """``make_decoder`` builder: an :class:`ECCTDecoder` for ``code`` (``num_iters`` unused).

    Raises:
        ValueError: no such model, or a model trained for another parity-check matrix.
    """
    net = load_ecct(resolve_model_path(model, code))
    h_model = net.H.to(torch.uint8).numpy()
    h_code = np.asarray(code.H, dtype=np.uint8)
    if h_model.shape != h_code.shape or not np.array_equal(h_model, h_code):
        raise ValueError(f"ECCT model {model or zoo_name(code.name)} was trained for a "
                         f"{h_model.shape[0]}x{h_model.shape[1]} parity-check matrix that is not "
                         f"the H of {code.name} ({h_code.shape[0]}x{h_code.shape[1]})")
    return ECCTDecoder(net, device=device, batch_size=batch_size)
