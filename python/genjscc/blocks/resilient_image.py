"""resilient_image_encoder / resilient_image_decoder: images over packet-erasure links with
the loss-resilient token codec (genjscc.core.resilient, docs/resilient.md).

The encoder turns an image PDU (raw RGB ``H x W x 3`` u8 with ``height``/``width`` metadata,
or the bytes of an image file, or a file name as a PMT symbol) into fixed-size packet PDUs
(u8, ``packet_bytes`` each) with metadata ``image_id``, ``segment`` (the packet's place in
sending order) and ``num_segments``. Every packet carries its own header and CRC, so the
decoder needs no metadata: it takes the packets in any order, any subset, as u8 PDUs or as
f32 LLR PDUs (hard decisions ``bit = llr < 0``, behind a soft demapper). Corrupt and foreign
packets are rejected and counted, repeats ignored and counted.

An image is complete, decoded (lost tokens concealed) and emitted when all its distinct
packets arrived, when a packet of another image arrives, when ``timeout_s`` seconds pass
without a packet, or when the flowgraph stops. Output: a u8 PDU of raw RGB pixels with
``height``, ``width``, ``image_id`` and ``missing_segments`` (distinct packets that never
arrived).
"""

from __future__ import annotations

import threading

import numpy as np
import pmt
import torch

from genjscc.blocks._meta import (
    KEY_HEIGHT,
    KEY_IMAGE_ID,
    KEY_MISSING_SEGMENTS,
    KEY_NUM_SEGMENTS,
    KEY_SEGMENT,
    KEY_WIDTH,
)
from genjscc.blocks._pdu import PORT_OUT, PduBlock, PduError, make_pdu
from genjscc.blocks.jscc import image_from_message
from genjscc.core.resilient.codec import DEFAULT_MODEL, load_codec
from genjscc.core.resilient.packets import MIN_PACKET_BYTES, unpack

__all__ = ["resilient_image_decoder", "resilient_image_encoder"]


def _packet_bytes(msg: pmt.pmt_base) -> bytes:
    """The packet of a u8 PDU, or of an f32 LLR PDU (hard decisions, MSB first)."""
    if not pmt.is_pair(msg):
        raise PduError("expected a PDU (pmt.cons(metadata dict, vector))")
    vec = pmt.cdr(msg)
    if pmt.is_u8vector(vec):
        return bytes(pmt.u8vector_elements(vec))
    if pmt.is_f32vector(vec):
        llr = np.asarray(pmt.f32vector_elements(vec), dtype=np.float32)
        if llr.size % 8:
            raise PduError(f"{llr.size} LLRs are not whole bytes")
        return np.packbits((llr < 0).astype(np.uint8)).tobytes()
    raise PduError("packets must be u8 PDUs (bytes) or f32 PDUs (LLRs)")


class resilient_image_encoder(PduBlock):
    """Image PDU in, ``num_packets`` (0: as many as the image needs) packet PDUs of
    ``packet_bytes`` bytes out (module docstring). Parameters: ``model`` (zoo name or
    .safetensors), ``packet_bytes``, ``num_packets``, ``threads`` (torch threads)."""

    def __init__(self, model: str = DEFAULT_MODEL, packet_bytes: int = 128,
                 num_packets: int = 0, threads: int = 1):
        PduBlock.__init__(self, "genjscc_resilient_image_encoder")
        if packet_bytes < MIN_PACKET_BYTES or num_packets < 0 or threads < 1:
            raise ValueError(f"packet_bytes must be >= {MIN_PACKET_BYTES}, num_packets >= 0, "
                             "threads >= 1")
        self.codec = load_codec(model or DEFAULT_MODEL)
        self.packet_bytes, self.num_packets, self.threads = packet_bytes, num_packets, threads
        self._next_id = 0

    def process(self, msg: pmt.pmt_base) -> list[pmt.pmt_base]:
        _, image = image_from_message(msg)
        image_id, self._next_id = self._next_id, (self._next_id + 1) & 0xFFFF
        torch.set_num_threads(self.threads)
        try:
            packets = self.codec.encode(image, self.packet_bytes, self.num_packets or None,
                                        image_id)
        except ValueError as err:
            raise PduError(str(err)) from None
        pdus = []
        for seg, packet in enumerate(packets):
            out = pmt.make_dict()
            for key, value in ((KEY_IMAGE_ID, image_id), (KEY_SEGMENT, seg),
                               (KEY_NUM_SEGMENTS, len(packets))):
                out = pmt.dict_add(out, key, pmt.from_long(int(value)))
            pdus.append(make_pdu(out, np.frombuffer(packet, dtype=np.uint8)))
        return pdus


class resilient_image_decoder(PduBlock):
    """Packet PDUs in (any order, any subset), image PDUs out (module docstring).

    Parameters: ``model`` (the encoder's), ``timeout_s`` (seconds without a packet after which
    the pending image is decoded; 0 = only on completion, a new image or stop), ``save_path``
    (optional PNG path per image, ``{n}`` = image count), ``threads``.
    """

    def __init__(self, model: str = DEFAULT_MODEL, timeout_s: float = 1.0,
                 save_path: str = "", threads: int = 1):
        PduBlock.__init__(self, "genjscc_resilient_image_decoder")
        if not timeout_s >= 0 or threads < 1:
            raise ValueError("timeout_s must be >= 0 and threads >= 1")
        self.codec = load_codec(model or DEFAULT_MODEL)
        self.timeout_s, self.save_path, self.threads = float(timeout_s), save_path, threads
        self._lock = threading.Lock()
        self._pending: dict | None = None
        self._timer: threading.Timer | None = None
        self._num_images = self._num_rejected = self._num_duplicates = 0

    def num_images(self) -> int:
        """Images decoded and emitted."""
        return self._num_images

    def num_rejected(self) -> int:
        """Packets rejected: corrupt (CRC), foreign or undecodable."""
        return self._num_rejected

    def num_duplicates(self) -> int:
        """Repeated packets ignored."""
        return self._num_duplicates

    def process(self, msg: pmt.pmt_base) -> list[pmt.pmt_base]:
        packet = _packet_bytes(msg)
        try:
            head, _ = unpack(packet)
        except ValueError as err:
            with self._lock:
                self._num_rejected += 1
            raise PduError(f"rejected a packet: {err}") from None
        key = (head.image_id, head.count, head.height, head.width, len(packet))
        out = []
        with self._lock:
            self._cancel_timer()
            pend = self._pending
            if pend is not None and pend["key"] != key:
                out.append(self._emit(pend))  # a new image started: the old one is done
                pend = None
            if pend is None:
                pend = {"key": key, "packets": [], "indices": set()}
            pend["packets"].append(packet)
            pend["indices"].add(head.index)
            self._pending = pend
            if len(pend["indices"]) == head.count:
                out.append(self._emit(pend))
                self._pending = None
            elif self.timeout_s > 0:
                self._timer = threading.Timer(self.timeout_s, self._on_timeout)
                self._timer.daemon = True
                self._timer.start()
        return [pdu for pdu in out if pdu is not None]

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timeout(self) -> None:
        with self._lock:
            pend, self._pending, self._timer = self._pending, None, None
            pdu = self._emit(pend) if pend is not None else None
        if pdu is not None:
            self.message_port_pub(PORT_OUT, pdu)

    def stop(self) -> bool:
        """Decode the image still being collected when the flowgraph stops."""
        self._on_timeout()
        return True

    def _emit(self, pend: dict) -> pmt.pmt_base | None:
        torch.set_num_threads(self.threads)
        image, report = self.codec.decode(pend["packets"])
        self._num_rejected += report.rejected
        self._num_duplicates += report.duplicates
        if image is None:
            self.logger.warn("no decodable packet for an image; nothing to emit")
            return None
        pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        self._num_images += 1
        if self.save_path:
            from PIL import Image

            Image.fromarray(pixels).save(self.save_path.replace("{n}", str(self._num_images)))
        image_id, count, h, w, _ = pend["key"]
        meta = pmt.make_dict()
        for k, v in ((KEY_HEIGHT, h), (KEY_WIDTH, w), (KEY_IMAGE_ID, image_id),
                     (KEY_MISSING_SEGMENTS, count - report.received)):
            meta = pmt.dict_add(meta, k, pmt.from_long(int(v)))
        return make_pdu(meta, pixels.reshape(-1))



