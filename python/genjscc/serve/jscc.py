"""Deep JSCC behind the inference server: the ``jscc`` model kind and its client wrapper.

Server side, :func:`load_jscc` (registered as kind ``jscc`` in
:data:`genjscc.serve.registry.KINDS`) serves a zoo JSCC model (``genjscc serve --models
jscc-r1_6``) or a ``.safetensors`` file (``jscc:/path/model.safetensors``) with two ops:

* ``encode``: ``<f4 [B, 3, H, W]`` images in [0, 1], params ``snr_db`` (a number or a list of
  B numbers) -> ``<c8 [B, k]`` symbols (unit average energy per image).
* ``decode``: ``<c8 [B, k]`` symbols, params ``snr_db``, ``height``, ``width`` -> ``<f4
  [B, 3, height, width]`` images.

Requests are not merged (image sizes differ from one request to the next). ``info`` holds the
ratio and the configuration. Both ops state their cost (:data:`JSCC_MS_PER_PIXEL_VALUE` per
pixel value coded), so the broker refuses a request above ``--max-request-ms`` as
``too_large`` before any work; ``decode`` also refuses a height and width that do not match
its symbol count (the model's check), so a small request cannot ask for a huge image.

Client side, :class:`RemoteJSCC` has the local model's call signature (``encode``,
``decode``, ``num_symbols``, ``ratio``, ``config``), so ``genjscc jscc-eval --backend
tcp://HOST:PORT`` and the evaluation code run unchanged against a server.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genjscc.serve.registry import Arrays, Op, Servable

__all__ = ["JSCC_MS_PER_PIXEL_VALUE", "RemoteJSCC", "load_jscc"]

# ms per RGB pixel value on one core of the reference machine (docs/protocol.md, Limits):
# timed 1.3-4.0e-4 for encode and 2.8-3.3e-4 for decode (jscc-r1_6/12/24, 64x64 to 512x768
# images, one thread, best of 2), rounded up as the ECCT and BP constants are.
JSCC_MS_PER_PIXEL_VALUE = 4e-4


def _snr_param(params: dict[str, Any], batch: int) -> list[float]:
    snr = params.get("snr_db")
    values = snr if isinstance(snr, list) else [snr]
    if not values or not all(isinstance(v, int | float) and not isinstance(v, bool)
                             for v in values):
        raise ValueError("params.snr_db must be a number or a list of numbers (dB)")
    if len(values) not in (1, batch):
        raise ValueError(f"params.snr_db has {len(values)} values for a batch of {batch}")
    return [float(v) for v in values]


def load_jscc(spec: str, device: str) -> Servable:
    """A JSCC model by zoo name or .safetensors path, with ops ``encode`` and ``decode``."""
    import torch

    from genjscc import zoo

    ref = zoo.resolve(spec, "jscc")
    sha = ref.sha256
    dev = torch.device(device)
    model = zoo.load(ref, "jscc", dev)

    def encode(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        image = np.array(arrays[0], dtype=np.float32)
        if image.ndim != 4 or image.shape[1] != 3 or not np.all(np.isfinite(image)):
            raise ValueError("encode takes finite <f4 images [B, 3, H, W] in [0, 1]")
        snr = _snr_param(params, image.shape[0])
        with torch.no_grad():
            x = model.encode(torch.from_numpy(image).to(dev), torch.tensor(snr))
        return [x.cpu().numpy().astype(np.complex64)], {}

    def decode(arrays: Arrays, params: dict[str, Any]) -> tuple[Arrays, dict[str, Any]]:
        y = np.array(arrays[0], dtype=np.complex64)
        height, width = params.get("height"), params.get("width")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                   for v in (height, width)):
            raise ValueError("decode needs positive integer params height and width")
        if y.ndim != 2 or not np.all(np.isfinite(y)):
            raise ValueError("decode takes finite <c8 symbols [B, k]")
        snr = _snr_param(params, y.shape[0])
        with torch.no_grad():
            rec = model.decode(torch.from_numpy(y).to(dev), torch.tensor(snr), height, width)
        return [rec.cpu().numpy().astype(np.float32)], {}

    info = {"ratio": str(model.ratio), "config": {"channels": model.config.channels,
                                                  "af_hidden": model.config.af_hidden,
                                                  "ratio": model.config.ratio}}
    # encode's first array holds pixel values; decode's holds symbols, 1/ratio values each
    per_symbol = JSCC_MS_PER_PIXEL_VALUE / float(model.ratio)
    return Servable(spec, "jscc", sha, dev.type, info,
                    {"encode": Op(encode, cost={"ms_per_value": JSCC_MS_PER_PIXEL_VALUE}),
                     "decode": Op(decode, cost={"ms_per_value": per_symbol})})


class RemoteJSCC:
    """A JSCC model on a server, with the local :class:`DeepJSCC` call signature."""

    def __init__(self, backend: str, model: str, **options: Any):
        from genjscc.core.jscc import DeepJSCC
        from genjscc.serve.client import connect

        self.name = model
        client = connect(backend, **options)
        self._encode = client.batched(model, "encode")
        self._decode = client.batched(model, "decode")
        # the configuration, hence the channel-use count, is the local zoo's model card's
        from genjscc.core.jscc import load_model

        local = load_model(model)
        self.config = local.config
        self.ratio = local.ratio
        self._geometry = DeepJSCC

    def num_symbols(self, height: int, width: int) -> int:
        hp, wp = self._geometry.padded_size(height, width)
        return self.config.latent_channels * (hp // 8) * (wp // 8) // 2

    @staticmethod
    def _snr(snr_db: Any) -> float | list[float]:
        import torch

        if isinstance(snr_db, torch.Tensor):
            values = snr_db.reshape(-1).tolist()
            return values[0] if len(values) == 1 else values
        return float(snr_db)

    def encode(self, image, snr_db):
        import torch

        x = self._encode(image.float(), snr_db=self._snr(snr_db))
        return torch.from_numpy(np.asarray(x, dtype=np.complex64))

    def decode(self, y, snr_db, height: int, width: int):
        import torch

        rec = self._decode(y.to(torch.complex64), snr_db=self._snr(snr_db), height=int(height),
                           width=int(width))
        return torch.from_numpy(np.asarray(rec, dtype=np.float32))
