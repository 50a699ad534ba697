"""The issue-2 example runs end to end and reports what it claims."""

import importlib.util
import pathlib

import pytest

EXAMPLE = pathlib.Path(__file__).parents[1] / "examples" / "penalty_ami.py"


def _load():
    spec = importlib.util.spec_from_file_location("penalty_ami", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("penalty", ["activity_kl", "xcov"])
def test_quick_run_reports_scores(penalty, capsys):
    rows = _load().main(["--quick", "--penalty", penalty])
    assert [r["penalty"] for r in rows] == ["none", penalty]
    for row in rows:
        assert 0.0 <= row["binary_acc"] <= 1.0
        assert -0.1 <= row["ami"] <= 1.0
    assert "AMI" in capsys.readouterr().out
