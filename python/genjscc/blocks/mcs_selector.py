"""mcs_selector: SNR estimate in, TS 38.214 MCS out (genjscc.core.amc.select_mcs).

Input port ``snr``: a PMT number (the SNR in dB, Es/N0 per complex symbol), or a PMT dict, or
a PDU whose metadata dict, holds ``snr_db``. Output port ``mcs``: a PMT dict per input with
``mcs_index`` (long), ``modulation_order`` (long), ``code_rate`` (double),
``modulation`` (symbol, the genjscc.core.mapping name), ``spectral_efficiency`` (double),
``table`` (long), ``snr_db`` (double, the input) and ``threshold_db`` (double, the chosen MCS's
threshold).
"""

from __future__ import annotations

import math
import threading

import pmt

from genjscc.blocks._meta import (
    KEY_CODE_RATE,
    KEY_MCS_INDEX,
    KEY_MCS_TABLE,
    KEY_MODULATION,
    KEY_MODULATION_ORDER,
    KEY_SNR_DB,
    KEY_SPECTRAL_EFFICIENCY,
    KEY_THRESHOLD_DB,
    get_float,
    real_number,
)
from genjscc.blocks._pdu import PduError, keep_alive
from genjscc.core.amc import MCSEntry, select_mcs, snr_thresholds
from gnuradio import gr

__all__ = ["PORT_MCS", "PORT_SNR", "mcs_message", "mcs_selector", "parse_snr"]

PORT_SNR = pmt.intern("snr")
PORT_MCS = pmt.intern("mcs")


def parse_snr(msg: pmt.pmt_base) -> float:
    """The SNR (dB) carried by ``msg``: a number, a dict with ``snr_db``, or a PDU whose
    metadata has it. Raises PduError otherwise."""
    if pmt.is_number(msg):
        return real_number(msg, "the SNR message (dB)")
    if pmt.is_dict(msg):
        meta = msg
    elif pmt.is_pair(msg) and pmt.is_dict(pmt.car(msg)):
        meta = pmt.car(msg)
    else:
        raise PduError("expected a PMT number (SNR in dB), a dict or a PDU with key 'snr_db'")
    snr = get_float(meta, KEY_SNR_DB)
    if snr is None:
        raise PduError("the message has no 'snr_db' key")
    return snr


def mcs_message(entry: MCSEntry, snr_db: float, threshold_db: float) -> pmt.pmt_base:
    """The output dict for ``entry`` chosen at ``snr_db``."""
    fields = (
        (KEY_MCS_INDEX, pmt.from_long(entry.index)),
        (KEY_MODULATION_ORDER, pmt.from_long(entry.modulation_order)),
        (KEY_CODE_RATE, pmt.from_double(entry.code_rate)),
        (KEY_MODULATION, pmt.intern(entry.modulation)),
        (KEY_SPECTRAL_EFFICIENCY, pmt.from_double(entry.spectral_efficiency)),
        (KEY_MCS_TABLE, pmt.from_long(entry.table)),
        (KEY_SNR_DB, pmt.from_double(snr_db)),
        (KEY_THRESHOLD_DB, pmt.from_double(threshold_db)),
    )
    d = pmt.make_dict()
    for key, value in fields:
        d = pmt.dict_add(d, key, value)
    return d


class mcs_selector(gr.basic_block):
    """Link adaptation: the TS 38.214 MCS for each SNR estimate.

    Chooses, among the MCS whose shipped SNR threshold (BLER ``target_bler`` over AWGN, see
    docs/amc.md) is at most ``snr_db - margin_db``, the one with the highest spectral
    efficiency (the highest index, except that table 1 MCS 17 is never worth it); MCS 0 below
    every threshold.

    Input (``snr``): PMT number (SNR in dB = Es/N0 per complex symbol), or a dict or PDU with
    key ``snr_db``. Output (``mcs``): a PMT dict (see the module docstring).

    Parameters: ``table`` (1: up to 64QAM, 2: up to 256QAM), ``target_bler`` (0.1 as shipped;
    other values are interpolated from the shipped BLER points), ``margin_db`` back-off (dB).
    Malformed messages are logged, counted in ``num_errors()`` and dropped.
    """

    def __init__(self, table: int = 1, target_bler: float = 0.1, margin_db: float = 0.0):
        gr.basic_block.__init__(self, name="genjscc_mcs_selector", in_sig=None, out_sig=None)
        keep_alive(self)  # GNU Radio 3.10 Python-block lifetime workaround (blocks/_pdu.py)
        self._lock = threading.Lock()
        self._num_processed = 0
        self._num_errors = 0
        self._table, self._target_bler, self._margin_db = 1, 0.1, 0.0
        self._thresholds: dict[int, float] = {}
        self._configure(table, target_bler, margin_db)
        self.message_port_register_in(PORT_SNR)
        self.message_port_register_out(PORT_MCS)
        self.set_msg_handler(PORT_SNR, self._handle)

    # -- settings (GRC callbacks) --------------------------------------------------------

    def _configure(self, table: int, target_bler: float, margin_db: float) -> None:
        margin = float(margin_db)
        if not math.isfinite(margin):
            raise ValueError(f"margin_db must be finite, got {margin_db!r}")
        thresholds = snr_thresholds(int(table), float(target_bler))  # validates both
        with self._lock:
            self._table, self._target_bler = int(table), float(target_bler)
            self._margin_db, self._thresholds = margin, thresholds

    def set_margin_db(self, margin_db: float) -> None:
        """Set the back-off (dB) subtracted from each SNR estimate."""
        self._configure(self._table, self._target_bler, margin_db)

    def set_target_bler(self, target_bler: float) -> None:
        """Set the target BLER (0.1 as shipped; others interpolated, ValueError if uncovered)."""
        self._configure(self._table, target_bler, self._margin_db)

    def margin_db(self) -> float:
        with self._lock:
            return self._margin_db

    def target_bler(self) -> float:
        with self._lock:
            return self._target_bler

    def table(self) -> int:
        with self._lock:
            return self._table

    # -- messages ------------------------------------------------------------------------

    def _handle(self, msg: pmt.pmt_base) -> None:
        try:
            snr = parse_snr(msg)
            with self._lock:
                table, margin, thresholds = self._table, self._margin_db, self._thresholds
            entry = select_mcs(snr, table, margin_db=margin, thresholds=thresholds)
            out = mcs_message(entry, snr, thresholds[entry.index])
        except Exception as err:  # a bad message must not stop the message thread
            with self._lock:
                self._num_errors += 1
            kind = "" if isinstance(err, PduError) else f" after an unexpected {type(err).__name__}"
            self.logger.warn(f"dropped a message{kind}: {err}")
            return
        with self._lock:
            self._num_processed += 1
        self.message_port_pub(PORT_MCS, out)

    def num_processed(self) -> int:
        """SNR messages turned into an MCS message."""
        with self._lock:
            return self._num_processed

    def num_errors(self) -> int:
        """Malformed messages dropped (each one was logged)."""
        with self._lock:
            return self._num_errors
