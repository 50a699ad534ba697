"""One module per reproduced paper experiment, run by ``keras-disentangle``.

Each module defines ``NAME``, ``HELP``, ``configure(parser)`` and
``main(args)`` (see ``keras_disentangle.experiments._common``). The library
never imports this package; only the command line does.
"""

#: Experiment modules, in the order of ``keras-disentangle --help``; the first
#: is the default subcommand.
MODULES = (
    "forced_to_learn",
    "covariance",
    "xor",
    "cifar10",
    "conv_autoencoder",
    "factors",
)
