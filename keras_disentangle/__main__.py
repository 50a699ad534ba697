"""``python -m keras_disentangle``: the ``keras-disentangle`` command line."""

import sys

from keras_disentangle.cli import main

sys.exit(main())
