"""Several machines with PyTorch: 2 processes of ``DistributedDataParallel``.

Two processes on 127.0.0.1 (``init_process_group("gloo")``, a free port)
each train one step of the Keras guide's DDP loop on their 8 of the 16
samples (``tests/distributed_models.py``). With ``synchronized=True`` every
object's step equals one step on one device over the 16 samples (1e-5 of
the step); with ``synchronized=False`` DeCov uses each process's own slice,
which is another step (the test can fail).
"""

import pytest
from distributed_models import KINDS, run_processes, torch_step
from distributed_models import differences as found

pytestmark = pytest.mark.backends("torch", reason="torch.distributed processes")


def test_ddp_step_equals_one_device(tmp_path):
    kinds = [*KINDS, "decov-local"]
    results = run_processes("torch", kinds, tmp_path)
    differences = found("torch DDP, 2 processes", results, kinds, torch_step)
    for kind in KINDS:
        assert differences[kind] < 1e-5, (kind, differences)
    assert differences["decov-local"] > 1e-2, differences
