"""The ZeroMQ inference server (``genjscc serve``) and the client the blocks use.

* :mod:`genjscc.serve.protocol`: the versioned wire format (JSON header + raw little-endian
  array frames; never pickle; bounded sizes), documented in docs/protocol.md.
* :mod:`genjscc.serve.server`: the broker: dynamic batching per model, N workers, stats.
* :mod:`genjscc.serve.worker`: a worker process (local, or on another host).
* :mod:`genjscc.serve.registry`: servable model kinds (``ecct``, ``bp``, ``lm``, and
  :func:`~genjscc.serve.registry.register_kind` for more).
* :mod:`genjscc.serve.client`: ``connect(backend)`` and the remote models.
* :mod:`genjscc.serve.security`: CurveZMQ keys.
"""
