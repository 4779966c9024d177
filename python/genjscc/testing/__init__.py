"""Helpers for testing genjscc and flowgraphs built on it: seeded hostile inputs
(:mod:`genjscc.testing.fuzz`). Used by tests/ and benchmarks/; no product module imports it."""
