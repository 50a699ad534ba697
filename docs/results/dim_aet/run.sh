#!/bin/sh
# The reduced runs behind docs/dim_aet.md's table (TensorFlow backend),
# run from the repository root; PYTHONPATH makes the examples import this
# checkout rather than an installed keras_disentangle.
set -e
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=docs/results/dim_aet/probes.csv
rm -f "$OUT"
A="--dataset cifar10 --seeds 0 --epochs 5 --csv $OUT"
python examples/deep_info_max_mnist.py $A
python examples/aet_mnist.py $A
python examples/aet_mnist.py $A --transform projective
python examples/aet_mnist.py $A --old-defaults
