"""The ``"ecct"`` entry of :func:`genjscc.core.fec.decoders.make_decoder`.

``make_decoder("ecct", code, model=MODEL)``: MODEL is a zoo name (``genjscc models``) or a
``.safetensors`` path written by :func:`genjscc.core.ecct.model.save_ecct`, loaded by
:func:`genjscc.zoo.load`; without it, the zoo model ``ecct-<code name>`` (lower case) is used
when one is shipped. The model's ``H`` must equal ``code.H``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genjscc.core.ecct.model import ECCTDecoder
from genjscc.core.fec.codes import Code


def zoo_name(code_name: str) -> str:
    """Zoo name of the shipped ECCT for a code: ``"ecct-" + code_name.lower()``."""
    from genjscc.zoo import model_name

    return model_name("ecct", code_name)


def build_decoder(code: Code, num_iters: int = 50, model: str | Path | None = None,
                  device: str | torch.device | None = None,
                  batch_size: int = 4096, syndrome_exit: bool = False) -> ECCTDecoder:
    """``make_decoder`` builder: an :class:`ECCTDecoder` for ``code`` (``num_iters`` unused;
    ``syndrome_exit``: see :class:`ECCTDecoder`).

    Raises:
        ValueError: no such model, or a model trained for another parity-check matrix.
    """
    from genjscc.zoo import load

    net = load(model if model is not None else zoo_name(code.name), "ecct")
    h_model = net.H.to(torch.uint8).numpy()
    h_code = np.asarray(code.H, dtype=np.uint8)
    if h_model.shape != h_code.shape or not np.array_equal(h_model, h_code):
        raise ValueError(f"ECCT model {model or zoo_name(code.name)} was trained for a "
                         f"{h_model.shape[0]}x{h_model.shape[1]} parity-check matrix that is not "
                         f"the H of {code.name} ({h_code.shape[0]}x{h_code.shape[1]})")
    return ECCTDecoder(net, device=device, batch_size=batch_size, syndrome_exit=syndrome_exit)
