"""GNU Radio blocks: thin PDU/stream plumbing around genjscc.core."""
