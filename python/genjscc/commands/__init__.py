"""The subcommands of ``genjscc`` (:mod:`genjscc.cli`): one module per command, each with
``add_arguments(parser)`` and ``run(args)``. They parse options, call the library (core/, zoo/,
serve/'s client, train/, demo/) and print or write the results; no algorithm lives here."""
