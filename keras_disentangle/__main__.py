"""``python -m keras_disentangle``: the ``keras-disentangle`` command line.

Python imports the package (and with it TensorFlow) before this module, so
``TF_CPP_MIN_LOG_LEVEL`` cannot be set in time here: the console script
``keras-disentangle`` (or ``python -m keras_disentangle_cli``) does that.
"""

import sys

from keras_disentangle.cli import main

sys.exit(main())
