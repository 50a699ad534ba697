"""``python -m keras_disentangle_cli``: the ``keras-disentangle`` command."""

import sys

from keras_disentangle_cli import main

sys.exit(main())
