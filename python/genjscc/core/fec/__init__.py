"""Channel coding: codes and their :class:`~genjscc.core.fec.codes.Code` protocol
(:mod:`.codes`, :mod:`.ldpc5g`), CRCs (:mod:`.crc`), transport-block framing
(:mod:`.framing`), belief propagation (:mod:`.bp`) and the decoder factory
(:mod:`.decoders`)."""
