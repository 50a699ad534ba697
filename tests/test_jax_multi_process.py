"""Several machines with JAX: 2 processes of ``keras.distribution``.

Two processes on 127.0.0.1 (``keras.distribution.initialize``, i.e.
``jax.distributed.initialize`` with gloo CPU collectives, a free port)
each build the model under ``keras.distribution.DataParallel`` over both
processes' devices and call ``model.fit`` unchanged on their own 8 of the
16 samples (``tests/distributed_models.py``). The batch is one global
array, so every object's step equals one step on one device over the 16
samples (1e-5 of the step), and so does ``synchronized=False`` (DeCov):
on JAX the statistics are global either way, where PyTorch's per-process
DeCov step differs by 20% (``test_torch_ddp.py``).
"""

import pytest
from distributed_models import KINDS, fit_step, run_processes
from distributed_models import differences as found

pytestmark = pytest.mark.backends("jax", reason="jax.distributed processes")


def test_two_processes_step_equals_one_device(tmp_path):
    kinds = [*KINDS, "decov-local"]
    results = run_processes("jax", kinds, tmp_path)
    differences = found("JAX, 2 processes", results, kinds, fit_step)
    for kind in kinds:
        assert differences[kind] < 1e-5, (kind, differences)
