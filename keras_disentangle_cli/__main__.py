"""``python -m keras_disentangle_cli``: the quiet ``keras-disentangle``."""

import sys

from keras_disentangle_cli import main

sys.exit(main())
