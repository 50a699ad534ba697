"""``keras-disentangle xor`` (Kågebäck & Mogren section 3.3)."""

import csv

import numpy as np
import pytest

from keras_disentangle import cli, scores

COLUMNS = ["variant", "seed", "accuracy", "loss", "active_1", "active_2"]


def _read(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_xor_counts_active_units_with_the_scores_rule():
    # xor's column is scores.active_units (one home for the variance share).
    rng = np.random.default_rng(0)
    for _ in range(5):
        h = rng.random((4, 6)) * rng.choice([1e-3, 1.0, 0.05], size=6)
        var = [np.var(h[:, j], ddof=1) for j in range(6)]
        total = sum(var)
        expected = sum(1 for v in var if v >= 0.01 * total)
        assert scores.active_units(h, 0.01) == expected
    assert scores.active_units(np.ones((4, 3))) == 0


def test_quick_run_writes_table_csv_and_plots(tmp_path, capsys):
    out = tmp_path / "xor"
    assert cli.main(["xor", "--quick", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    header = [line for line in text.splitlines() if line.startswith("variant  ")]
    assert header and header[0].split()[: len(COLUMNS)] == COLUMNS
    assert "layer 1 covariance" in text
    runs = _read(out / "xor_runs.csv")
    assert [r["variant"] for r in runs] == ["baseline", "L_Sigma"]
    for r in runs:
        assert float(r["accuracy"]) == 1.0  # XOR is learnt either way
        assert len(r["variances_1"].split()) == 4
    summary = _read(out / "xor.csv")
    assert {"active_1", "active_2", "active_1_std", "n"} <= set(summary[0])
    assert (out / "xor_seed0.png").read_bytes()[:4] == b"\x89PNG"
    # L_Sigma switches units off: fewer active units than without it.
    base, pen = runs
    assert int(pen["active_1"]) + int(pen["active_2"]) < int(base["active_1"]) + int(
        base["active_2"]
    )


@pytest.mark.slow
def test_default_run_switches_units_off(tmp_path):
    out = tmp_path / "xor"
    assert cli.main(["xor", "--output", str(out)]) == 0
    runs = _read(out / "xor_runs.csv")
    pen = [r for r in runs if r["variant"] == "L_Sigma"]
    base = [r for r in runs if r["variant"] == "baseline"]
    assert len(pen) == len(base) == 5
    assert all(float(r["accuracy"]) == 1.0 for r in runs)
    assert all(int(r["active_1"]) == 4 for r in base)
    # The paper: 2 active units in layer 1 and 1 in layer 2.
    assert all(int(r["active_1"]) == 2 for r in pen), pen
    assert all(int(r["active_2"]) == 1 for r in pen), pen
