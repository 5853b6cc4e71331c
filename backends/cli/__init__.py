"""The ``xpsoftmax`` command line: one parser module and one module per subcommand's work.

`parser` holds the argument parsing and dispatch of every subcommand; `compare` (with its cells,
report and plot modules) and `calibrate` hold what each subcommand does. Nothing else lives here:
adapters are in `xpsoftmax.backends`, the measuring tools in `xpsoftmax.testing`.
"""
