"""Link adaptation: TS 38.214 MCS tables, measured SNR thresholds and the SNR -> MCS choice.

* :mod:`.tables`: :func:`mcs_table`, :class:`MCSEntry`, the transport block size of §5.1.3.2
  and :func:`transport_config` (the 5G NR LDPC code block of an MCS on ``num_re`` resource
  elements).
* :mod:`.thresholds`: :func:`measure_thresholds` (Monte Carlo), the shipped
  :func:`snr_thresholds` and :func:`select_mcs`.
* :mod:`.cliff`: :func:`amc_cliff_curves` and :func:`plot_amc_cliff`, the cliff and
  leveling effects of a wrong SNR estimate.

SNR everywhere is Es/N0 per complex symbol (resource element) in dB, docs/conventions.md.
See docs/amc.md.
"""

from genjscc.core.amc.cliff import AmcCliffData, amc_cliff_curves, plot_amc_cliff
from genjscc.core.amc.tables import (
    MCS_TABLES,
    MCSEntry,
    TransportConfig,
    mcs_entry,
    mcs_table,
    transport_block_size,
    transport_config,
)
from genjscc.core.amc.thresholds import (
    DEFAULT_TARGET_BLER,
    CurvePoint,
    MCSThreshold,
    ThresholdMeasurement,
    ThresholdTable,
    interpolate_snr,
    load_thresholds,
    measure_thresholds,
    select_mcs,
    simulate_bler,
    snr_thresholds,
    write_curves,
    write_thresholds,
)

__all__ = [
    "DEFAULT_TARGET_BLER",
    "MCS_TABLES",
    "AmcCliffData",
    "CurvePoint",
    "MCSEntry",
    "MCSThreshold",
    "ThresholdMeasurement",
    "ThresholdTable",
    "TransportConfig",
    "amc_cliff_curves",
    "interpolate_snr",
    "load_thresholds",
    "mcs_entry",
    "mcs_table",
    "measure_thresholds",
    "plot_amc_cliff",
    "select_mcs",
    "simulate_bler",
    "snr_thresholds",
    "transport_block_size",
    "transport_config",
    "write_curves",
    "write_thresholds",
]
