"""The measured tables of README.md and docs/ are what their CSVs give.

Each block ``<!-- table: NAME -->`` ... ``<!-- /table -->`` is written by
``docs/_tools/tables.py`` from the CSVs of a recorded run under
``docs/results/``; a hand edit, or a CSV recorded without rewriting the
documents, fails here.
"""

import importlib.util
import json
import pathlib
import shutil

import pytest

pytestmark = pytest.mark.backend_independent

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location(
        "docs_tables", ROOT / "docs" / "_tools" / "tables.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_documented_table_is_what_its_csv_gives(tables):
    diffs = tables.stale()
    assert not diffs, "stale tables (run python docs/_tools/tables.py write):\n" + (
        "\n".join(diffs.values())
    )


def test_every_block_has_a_writer_and_every_run_its_provenance(tables):
    names = [n for p in tables.documents() for n in tables.blocks(p.read_text())]
    assert names, "no table block in the documentation"
    assert set(names) <= set(tables.TABLES)
    for meta in (ROOT / "docs" / "results").glob("*/meta.json"):
        data = json.loads(meta.read_text())
        for key in ("command", "keras_disentangle", "commit", "machine", "files"):
            assert data.get(key), f"{meta}: no {key}"
        for name in data["files"]:
            assert (meta.parent / name).is_file(), f"{meta}: {name} is missing"


def test_a_changed_csv_changes_the_documented_table(tables, tmp_path, monkeypatch):
    # The check can fail: one changed value in a recorded CSV is seen.
    shutil.copytree(tables.RESULTS, tmp_path / "results")
    monkeypatch.setattr(tables, "RESULTS", tmp_path / "results")
    path = tmp_path / "results" / "forced_to_learn" / "forced_to_learn.csv"
    text = path.read_text().splitlines()
    header = text[0].split(",")
    first = text[1].split(",")
    column = header.index("ami")
    first[column] = str(float(first[column]) + 0.25)
    text[1] = ",".join(first)
    path.write_text("\n".join(text) + "\n")
    assert tables.stale()
