"""jscc_image_encoder / jscc_image_decoder: Deep JSCC images as analog channel symbols.

Image PDUs (the encoder's input, the decoder's output) are u8 PDUs of raw RGB pixels, row by
row (``H x W x 3`` bytes), with ``height`` and ``width`` (long) in the metadata. The encoder
also takes the bytes of an image file (PNG, JPEG, ...) without size metadata;
:func:`image_pdu` reads a file into a PDU for message sources.

Symbol PDUs are c32 vectors of JSCC symbols (unit average energy per image). An image needs
``k = ratio x 3 H' W'`` symbols (``H', W'`` rounded up to multiples of 8); with
``symbols_per_frame > 0`` they are cut into ``ceil(k / symbols_per_frame)`` segments of
exactly ``symbols_per_frame`` symbols (the last one zero-padded), so that each fits one OFDM
frame (at most 4095 symbols with ``ofdm_qam_tx``). Segment metadata: ``image_id``,
``segment``, ``num_segments``, ``height``, ``width``, ``snr_db`` (the encoder's).

The decoder places a segment by its ``segment``/``image_id`` metadata, or, behind an OFDM
receiver that drops metadata, by the frame counter ``packet_num`` (unwrapped across its
12-bit wrap; the image size then comes from the block's ``height``/``width`` parameters).
With ``spread`` (the default, the same on both ends) the encoder sends each image's padded
symbol vector through the unitary spreading of :mod:`genjscc.core.jscc.spreading` (it turns an
OFDM receiver's per-carrier gain errors on the strong latents into a small additive noise),
and the decoder inverts it.
Missing segments are decoded as zeros (JSCC degrades; nothing is dropped) and counted. SNR
(Es/N0 per symbol, dB) comes from ``snr_db`` metadata, else ``noise_var`` (N0 after
equalization: ``snr = 1 / noise_var``), else the block's ``snr_db`` parameter; without any
the PDU is refused with a clear error ("missing SNR").
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._meta import (
    KEY_HEIGHT,
    KEY_IMAGE_ID,
    KEY_MISSING_SEGMENTS,
    KEY_NOISE_VAR,
    KEY_NUM_SEGMENTS,
    KEY_PACKET_NUM,
    KEY_SEGMENT,
    KEY_SNR_DB,
    KEY_WIDTH,
    get_float,
    get_long,
)
from genjscc.blocks._pdu import PduBlock, PduError, make_pdu, parse_pdu
from genjscc.core.jscc.images import decode_image_file, read_image_file
from genjscc.core.jscc.spreading import FrameCounter, despread, segment, spread

__all__ = ["image_pdu", "jscc_image_decoder", "jscc_image_encoder", "sample_image_path"]

MAX_PIXELS = 4096 * 4096
SNR_RANGE_DB = (-50.0, 100.0)  # what a PDU may state: beyond it a forged value, not a channel


def sample_image_path(name: str = "100007.jpg") -> str:
    """Path of a shipped sample photograph (genjscc/data/images, BSDS500 test split)."""
    from genjscc.core.jscc.images import sample_image_path as _path

    return _path(name)


def image_pdu(path: str) -> pmt.pmt_base:
    """A PDU holding the bytes of an image file (for a message strobe's ``msg``)."""
    return make_pdu(pmt.make_dict(), _read_image_file(path))


def _read_image_file(name: str) -> np.ndarray:
    """Bytes of an image file; a bare name that is not found is a shipped sample photograph."""
    try:
        return read_image_file(name)
    except OSError as err:
        raise PduError(f"cannot read image file {name!r}: {err.strerror or err}") from None


def _load_model(model: str, ratio: str):
    from genjscc import zoo

    return zoo.load(model or zoo.model_name("jscc", ratio), "jscc")


def _decode_image_bytes(meta: pmt.pmt_base, data: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` uint8 from a raw RGB PDU (with height/width) or image file bytes."""
    height, width = get_long(meta, KEY_HEIGHT), get_long(meta, KEY_WIDTH)
    if height is not None or width is not None:
        if height is None or width is None or height < 8 or width < 8:
            raise PduError("raw image PDUs need metadata height and width, both >= 8")
        if height * width > MAX_PIXELS:
            raise PduError(f"{height}x{width} is larger than {MAX_PIXELS} pixels")
        if data.size != height * width * 3:
            raise PduError(f"raw RGB image {height}x{width} needs {height * width * 3} bytes, "
                           f"got {data.size} (truncated or wrong size)")
        return data.reshape(height, width, 3)
    try:
        return decode_image_file(data.tobytes(), MAX_PIXELS)
    except ValueError as err:
        raise PduError(f"the PDU is neither a raw RGB image (height/width metadata missing) "
                       f"nor a readable image file: {err}") from None


def image_from_message(msg: pmt.pmt_base) -> tuple[pmt.pmt_base, torch.Tensor]:
    """(metadata, ``[3, H, W]`` float image in [0, 1]) of an image message: a PDU of u8 (image
    file bytes, or raw RGB with height/width metadata) or a symbol naming an image file (a bare
    name that is not found is a shipped sample photograph). PduError if it is neither."""
    if pmt.is_symbol(msg):  # a file name, e.g. from a message strobe
        meta, data = pmt.make_dict(), _read_image_file(pmt.symbol_to_string(msg))
    else:
        meta, data = parse_pdu(msg, "u8")
    pixels = _decode_image_bytes(meta, data)
    return meta, torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255.0


class jscc_image_encoder(PduBlock):
    """Deep JSCC encoder: image PDU in, complex symbol PDU(s) out (module docstring).

    Parameters: ``model`` (zoo name or .safetensors path; empty = the shipped model of
    ``ratio``), ``ratio`` (bandwidth ratio), ``snr_db`` (the SNR the transmitter expects,
    used when the PDU has no ``snr_db`` metadata), ``symbols_per_frame`` (0 = one PDU per
    image), ``spread`` (unitary spreading, module docstring; the decoder's must match),
    ``device``.
    """

    def __init__(self, model: str = "", ratio: str = "1/6", snr_db: float = 10.0,
                 symbols_per_frame: int = 0, device: str = "cpu", spread: bool = True):
        PduBlock.__init__(self, "genjscc_jscc_image_encoder")
        if symbols_per_frame < 0:
            raise ValueError("symbols_per_frame must be >= 0")
        if not math.isfinite(snr_db):
            raise ValueError("snr_db must be finite")
        self.model = _load_model(model, ratio).to(device)
        self.device = device
        self.snr_db = float(snr_db)
        self.symbols_per_frame = int(symbols_per_frame)
        self.spread = bool(spread)
        self._next_id = 0

    def set_snr_db(self, snr_db: float) -> None:
        """Change the SNR the encoder adapts to (dB)."""
        self.snr_db = float(snr_db)

    def process(self, msg: pmt.pmt_base) -> list[pmt.pmt_base]:
        meta, image = image_from_message(msg)
        image = image[None]
        snr = get_float(meta, KEY_SNR_DB, vector_mean=True)
        snr = self.snr_db if snr is None else snr
        with torch.no_grad():
            x = self.model.encode(image.to(self.device), snr)[0].cpu().numpy()
        height, width = image.shape[-2:]
        segments = segment(x, self.symbols_per_frame)
        if self.spread:
            segments = spread(segments.reshape(-1)).reshape(segments.shape)
        image_id, self._next_id = self._next_id, self._next_id + 1
        pdus = []
        for seg, symbols in enumerate(segments):
            out = pmt.make_dict()
            for key, value in ((KEY_HEIGHT, height), (KEY_WIDTH, width), (KEY_IMAGE_ID, image_id),
                               (KEY_SEGMENT, seg), (KEY_NUM_SEGMENTS, len(segments))):
                out = pmt.dict_add(out, key, pmt.from_long(int(value)))
            out = pmt.dict_add(out, KEY_SNR_DB, pmt.from_double(float(snr)))
            pdus.append(make_pdu(out, symbols))
        return pdus


class jscc_image_decoder(PduBlock):
    """Deep JSCC decoder: symbol PDUs (with an SNR) in, image PDUs out (module docstring).

    Parameters: ``model``/``ratio`` as the encoder's (must match it); ``height``/``width``
    (pixels; used when the PDUs carry no size, e.g. behind an OFDM receiver; 0 = from
    metadata); ``symbols_per_frame`` (the encoder's, to place frames by ``packet_num``);
    ``snr_db`` (fallback SNR in dB when a PDU carries neither ``snr_db`` nor ``noise_var``;
    NaN = none: such PDUs are refused); ``save_path`` (optional: also write each image as a
    PNG, ``{n}`` in the name is replaced by the image count); ``spread`` (as the encoder's);
    ``device``.

    Output metadata: ``height``, ``width``, ``snr_db`` (what the decoder used),
    ``image_id`` and ``missing_segments``.
    """

    def __init__(self, model: str = "", ratio: str = "1/6", height: int = 0, width: int = 0,
                 symbols_per_frame: int = 0, snr_db: float = float("nan"),
                 save_path: str = "", device: str = "cpu", spread: bool = True):
        PduBlock.__init__(self, "genjscc_jscc_image_decoder")
        if height < 0 or width < 0 or symbols_per_frame < 0:
            raise ValueError("height, width and symbols_per_frame must be >= 0")
        self.model = _load_model(model, ratio).to(device)
        self.device = device
        self.height, self.width = int(height), int(width)
        self.symbols_per_frame = int(symbols_per_frame)
        self.snr_db = float(snr_db)
        self.save_path = save_path
        self.spread = bool(spread)
        self._lock = threading.Lock()
        self._pending: dict | None = None  # the image being collected
        self._frames = FrameCounter(12)  # the OFDM header's frame counter
        self._num_images = 0
        self._num_missing = 0

    def set_snr_db(self, snr_db: float) -> None:
        """Fallback SNR (dB) for PDUs without SNR metadata; NaN for none."""
        self.snr_db = float(snr_db)

    def num_images(self) -> int:
        """Images decoded and emitted."""
        return self._num_images

    def num_missing_segments(self) -> int:
        """Segments that never arrived (decoded as zeros) over all images."""
        return self._num_missing

    def _snr(self, meta: pmt.pmt_base) -> float:
        """The PDU's SNR in dB, checked to lie in SNR_RANGE_DB (a forged 1e12 dB would give
        a zero noise power, NaN a NaN image)."""
        snr = get_float(meta, KEY_SNR_DB, vector_mean=True)
        if snr is None:
            nv = get_float(meta, KEY_NOISE_VAR, vector_mean=True)
            if nv is not None:
                if not nv > 0:
                    raise PduError("metadata 'noise_var' must be > 0")
                snr = -10.0 * math.log10(nv)
            elif math.isfinite(self.snr_db):
                snr = self.snr_db
            else:
                raise PduError("missing SNR: the PDU has no 'snr_db' or 'noise_var' metadata "
                               "and the block has no snr_db parameter")
        low, high = SNR_RANGE_DB
        if not low <= snr <= high:
            raise PduError(f"SNR {snr} dB is outside [{low}, {high}] dB")
        return snr

    def _geometry(self, meta: pmt.pmt_base) -> tuple[int, int]:
        h = get_long(meta, KEY_HEIGHT) or self.height
        w = get_long(meta, KEY_WIDTH) or self.width
        if not h or not w:
            raise PduError("image size unknown: no height/width metadata and the block's "
                           "height/width parameters are 0")
        if h < 8 or w < 8 or h * w > MAX_PIXELS:
            raise PduError(f"image size {h}x{w} out of range")
        return h, w

    def _place(self, meta: pmt.pmt_base, k: int, n: int) -> tuple[int, int, int]:
        """(image id, segment, number of segments) of a PDU of ``n`` symbols."""
        seg, num_seg = get_long(meta, KEY_SEGMENT), get_long(meta, KEY_NUM_SEGMENTS)
        image_id = get_long(meta, KEY_IMAGE_ID)
        if seg is not None and num_seg is not None:
            if not 0 <= seg < num_seg:
                raise PduError(f"segment {seg} of {num_seg} is out of range")
            return (image_id if image_id is not None else 0), seg, num_seg
        spf = self.symbols_per_frame or n
        num_seg = -(-k // spf)
        if n != spf:
            raise PduError(f"got {n} symbols; frames of this image carry {spf}")
        packet = get_long(meta, KEY_PACKET_NUM)
        if packet is None:
            if num_seg != 1:
                raise PduError("cannot place a segment: no segment or packet_num metadata")
            return self._num_images, 0, 1
        frame = self._frames.unwrap(packet)
        return frame // num_seg, frame % num_seg, num_seg

    def process(self, msg: pmt.pmt_base) -> list[pmt.pmt_base]:
        meta, y = parse_pdu(msg, "c32")
        if not np.all(np.isfinite(y)):
            raise PduError("symbols must be finite")
        h, w = self._geometry(meta)
        k = self.model.num_symbols(h, w)
        snr = self._snr(meta)
        images = []
        with self._lock:
            image_id, seg, num_seg = self._place(meta, k, y.size)
            spf = y.size
            if num_seg * spf < k or (num_seg - 1) * spf >= k:
                raise PduError(f"{num_seg} segments of {spf} symbols do not hold the {k} "
                               f"symbols of a {h}x{w} image at ratio {self.model.ratio}")
            pend = self._pending
            if pend is not None and pend["id"] == image_id and pend["shape"] == (h, w) and \
                    (pend["spf"], pend["num_seg"]) != (spf, num_seg):
                # the same image in frames of another size: a damaged or forged frame
                raise PduError(f"a frame of {spf} symbols (1 of {num_seg}) for image "
                               f"{image_id}, whose frames carry {pend['spf']} (1 of "
                               f"{pend['num_seg']})")
            if pend is not None and (pend["id"] != image_id or pend["shape"] != (h, w)):
                images.append(self._emit(pend))  # a new image started: the old one is done
                pend = None
            if pend is None:
                pend = {"id": image_id, "shape": (h, w), "k": k, "spf": spf,
                        "num_seg": num_seg, "y": np.zeros(num_seg * spf, np.complex64),
                        "have": set(), "n0": []}
            pend["y"][seg * spf:(seg + 1) * spf] = y
            pend["have"].add(seg)
            pend["n0"].append(10.0 ** (-snr / 10.0))
            self._pending = pend
            if len(pend["have"]) == num_seg or seg == num_seg - 1:
                images.append(self._emit(pend))
                self._pending = None
        return images

    def _emit(self, pend: dict) -> pmt.pmt_base:
        """The image PDU of a collected image (missing segments decoded as zeros)."""
        h, w = pend["shape"]
        missing = pend["num_seg"] - len(pend["have"])
        snr = -10.0 * math.log10(sum(pend["n0"]) / len(pend["n0"]))
        symbols = despread(pend["y"]) if self.spread else pend["y"]
        y = torch.from_numpy(symbols[:pend["k"]].copy())[None].to(self.device)
        with torch.no_grad():
            rec = self.model.decode(y, snr, h, w)[0]
        pixels = (rec.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        self._num_images += 1
        self._num_missing += missing
        if self.save_path:
            from PIL import Image

            Image.fromarray(pixels).save(self.save_path.replace("{n}", str(self._num_images)))
        out = pmt.make_dict()
        for key, value in ((KEY_HEIGHT, h), (KEY_WIDTH, w), (KEY_IMAGE_ID, pend["id"]),
                           (KEY_MISSING_SEGMENTS, missing)):
            out = pmt.dict_add(out, key, pmt.from_long(int(value)))
        out = pmt.dict_add(out, KEY_SNR_DB, pmt.from_double(snr))
        return make_pdu(out, pixels.reshape(-1))
