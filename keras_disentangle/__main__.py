"""``python -m keras_disentangle``: the ``keras-disentangle`` command line.

Python imports the package (and with it Keras and TensorFlow) before this
module runs, so this form is slow to answer and shows TensorFlow's import
lines; ``keras-disentangle`` or ``python -m keras_disentangle_cli`` parse the
command line before importing anything heavy. The run itself is the same.
"""

import sys

from keras_disentangle_cli import main

sys.exit(main())
