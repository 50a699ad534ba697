"""keras-disentangle factors --quick: trains, scores and writes its files."""

import csv

import pytest

from keras_disentangle import cli
from keras_disentangle.experiments import factors


@pytest.mark.backends("tensorflow", reason="one end-to-end run is enough")
def test_quick_run_writes_scores_table_and_figures(tmp_path):
    assert cli.main(["factors", "--quick", "--output", str(tmp_path)]) == 0
    with open(tmp_path / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["penalty"], float(r["lambda"])) for r in rows] == [
        ("none", 0.0),
        ("L_Sigma", 0.1),
    ]
    for row in rows:
        for metric in factors.METRICS:
            assert float(row[metric]) == float(row[metric])  # not NaN
    for name in ("summary.csv", "correlations.csv"):
        assert (tmp_path / name).stat().st_size > 0
    for name in ("scores_vs_lambda.png", "traversals.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.backend_independent
def test_bad_options_fail_at_parse_time_with_status_2(tmp_path, capsys):
    for bad in (["--penalties", "L2"], ["--lambdas", "-1"], ["--code-units", "0"]):
        assert cli.main(["factors", "--quick", "--output", str(tmp_path), *bad]) == 2
        assert bad[0] in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written
