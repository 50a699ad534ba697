"""keras-disentangle factors --quick: trains, scores and writes its files."""

import argparse
import csv

import pytest

from keras_disentangle.experiments import factors


def _args(tmp_path, *extra):
    parser = argparse.ArgumentParser()
    parser.add_argument("--output")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--verbose", type=int, default=0)
    factors.configure(parser)
    return parser.parse_args(["--output", str(tmp_path), *extra])


@pytest.mark.backends("tensorflow", reason="one end-to-end run is enough")
def test_quick_run_writes_scores_table_and_figures(tmp_path):
    assert factors.main(_args(tmp_path, "--quick")) == 0
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


def test_unknown_penalty_fails_with_status_2(tmp_path, capsys):
    assert factors.main(_args(tmp_path, "--quick", "--penalties", "L2")) == 2
    assert "--penalties" in capsys.readouterr().err


@pytest.mark.backend_independent
def test_docs_table_is_rendered_from_the_kept_csvs():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "docs" / "_tools" / "factors_table.py"
    spec = importlib.util.spec_from_file_location("factors_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = module.PAGE.read_text(encoding="utf-8")
    assert page == module._page_with(module.render())
    assert "| none | 0 |" in page
