"""End-to-end demo: real GNU Radio flowgraphs and the core library, with a report.

The parts of ``genjscc demo`` (:data:`PARTS`, in the report's order); the command itself
(options, running the parts, writing the report) is :mod:`genjscc.commands.demo`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoPart:
    """One part of the demo, implemented by ``module``.

    Adding a part: write a module ``genjscc.demo.<name>`` with ``add_arguments(group)`` (its
    own options, prefixed with the part's name; light imports only, since ``genjscc --help``
    imports it), optionally ``check_arguments(args)`` (raise ValueError before any work), and
    ``run(args, out: Path) -> (list[report.Section], dict)``: its report sections (images
    already written to ``out``) and its entries of results.json. Then add a ``DemoPart`` to
    :data:`PARTS`. Import GNU Radio, models and matplotlib inside ``run``.
    """

    name: str
    module: str
    help: str


PARTS: list[DemoPart] = [
    DemoPart("links", "genjscc.demo.links",
             "uncoded QAM over the GNU Radio PDU channel and OFDM loopback"),
    DemoPart("coded", "genjscc.demo.coded",
             "CRC + 5G NR LDPC coded links beside the uncoded link"),
    DemoPart("amc", "genjscc.demo.amc",
             "AMC with a wrong SNR estimate: cliff and leveling (TS 38.214 MCS table 1)"),
    DemoPart("sscc", "genjscc.demo.sscc",
             "LM-SSCC: text through lm-small, xz or gzip + 5G LDPC + QPSK (GNU Radio)"),
    DemoPart("jscc", "genjscc.demo.jscc",
             "Deep JSCC images beside HEIF + 5G LDPC + QAM with AMC (ratio 1/6, AWGN)"),
    DemoPart("text", "genjscc.demo.text",
             "sentences at equal energy per word: LM-SSCC (ECCT, 5G LDPC) and the text JSCC"),
    DemoPart("resilient", "genjscc.demo.resilient",
             "images over bursty packet loss: the loss-resilient codec against HEIF + FEC"),
]
