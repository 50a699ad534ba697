"""The keras-disentangle command line, the shared helpers and ``cifar10``."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_disentangle import cli
from keras_disentangle.experiments import MODULES, _common


def test_module_help_lists_every_subcommand_default_first():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-m", "keras_disentangle", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout
    names = ["forced-to-learn", "covariance", "xor", "cifar10"]
    positions = [text.find("\n    " + name) for name in names]
    assert all(p > 0 for p in positions), text
    assert positions == sorted(positions)  # forced-to-learn first: the default
    assert "UD_90% against" in text  # a "%" in a help text is escaped


def test_every_subcommand_has_the_common_options(tmp_path):
    parser = cli.build_parser()
    for name in ["forced-to-learn", "covariance", "xor", "cifar10"]:
        args = parser.parse_args([name])
        assert str(args.output).endswith(os.path.join("results", name))
        assert args.quick is False and args.seeds is None and args.epochs is None
        assert args.verbose is False and callable(args._main)
        args = parser.parse_args(
            [name, "--quick", "--seeds", "2", "--epochs", "3", "--output", "o"]
        )
        assert (args.quick, args.seeds, args.epochs, str(args.output)) == (
            True,
            2,
            3,
            "o",
        )


def test_default_subcommand_is_the_first_module():
    assert MODULES[0] == "forced_to_learn"
    assert cli.with_default_command(["--quick"], ["forced-to-learn", "xor"]) == [
        "forced-to-learn",
        "--quick",
    ]
    args = cli.build_parser().parse_args(
        cli.with_default_command(["--quick"], ["forced-to-learn"])
    )
    assert args.command == "forced-to-learn" and args.quick


def test_bad_option_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["covariance", "--seeds", "many"])
    assert info.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


# ------------------------------------------------------------------ helpers


def test_print_table_aligns_and_returns_text(capsys):
    rows = [{"name": "a", "x": 0.5, "n": 3}, {"name": "long", "x": 1e-5}]
    text = _common.print_table(rows, ["name", "x", "n"], title="T")
    assert capsys.readouterr().out.strip() == text
    lines = text.splitlines()
    assert lines[0] == "T"
    assert lines[1].split() == ["name", "x", "n"]
    assert lines[3].split() == ["a", "0.500", "3"]
    assert lines[4].split() == ["long", "1.00e-05"]
    assert lines[3].index("0.500") == lines[1].index("x")  # aligned columns


def test_write_csv_and_mean_std(tmp_path):
    rows = [
        {"m": "a", "seed": 0, "x": 1.0},
        {"m": "a", "seed": 1, "x": 2.0, "extra": np.float32(4)},
        {"m": "b", "seed": 0, "x": 5.0},
    ]
    path = _common.write_csv(rows, tmp_path / "r.csv")
    with open(path) as handle:
        read = list(csv.DictReader(handle))
    assert list(read[0]) == ["m", "seed", "x", "extra"]
    assert read[1]["extra"] == "4.0" and read[0]["extra"] == ""
    agg = _common.mean_std(rows, ["m"], ["x"])
    values = [np.mean([1.0, 2.0]), np.std([1.0, 2.0]), 5.0, 0.0]
    assert [agg[0]["x"], agg[0]["x_std"], agg[1]["x"], agg[1]["x_std"]] == values
    assert [a["n"] for a in agg] == [2, 1]


def test_pick_seed_list_and_output_dir(tmp_path):
    class Args:
        quick = True
        seeds = None
        output = tmp_path / "deep" / "er"

    assert _common.seed_list(Args, default=3, quick_default=1) == [0]
    Args.seeds = 4
    assert _common.seed_list(Args, default=3) == [0, 1, 2, 3]
    assert _common.output_dir(Args, "x").is_dir()
    assert _common.fail("boom", 3) == 3


# ------------------------------------------------------------------ cifar10


def test_cifar10_offline_explains_and_exits_2(tmp_path, capsys):
    code = cli.main(
        [
            "cifar10",
            "--quick",
            "--data-dir",
            str(tmp_path / "tfds"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "CIFAR-10" in err and "--download" in err and "forced-to-learn" in err
    assert "mnist_5k()" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_cifar10_quick_with_mock_data(tmp_path, capsys):
    tfds = pytest.importorskip("tensorflow_datasets")
    out = tmp_path / "cifar"
    with tfds.testing.mock_data(num_examples=200):
        code = cli.main(
            [
                "cifar10",
                "--quick",
                "--variants",
                "baseline,l_multi",
                "--output",
                str(out),
            ]
        )
    assert code == 0
    text = capsys.readouterr().out
    header = [line for line in text.splitlines() if line.startswith("variant")]
    assert header and header[0].split() == [
        "variant",
        "ami",
        "ami_std",
        "nmi",
        "nmi_std",
        "accuracy",
        "n",
    ]
    with open(out / "cifar10_runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["variant"] for r in rows] == ["baseline", "l_multi"]
    assert {"ami", "nmi", "accuracy", "multi_margin", "multi_weight"} <= set(rows[0])
    for r in rows:
        assert -1.0 <= float(r["ami"]) <= 1.0 and 0.0 <= float(r["accuracy"]) <= 1.0
    for name in ["cifar10_ami_by_clusters.png", "cifar10_active_units_l_multi.png"]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_chunk_count_divides_the_steps():
    from keras_disentangle.experiments import _common

    assert _common.chunk_count(30000) == 10
    assert _common.chunk_count(15) == 5
    assert _common.chunk_count(7) == 7
    assert _common.chunk_count(13) == 1
    for total in range(1, 60):
        assert total % _common.chunk_count(total) == 0


def test_cifar10_bad_weight_exits_2_before_reading_data(tmp_path, capsys):
    from keras_disentangle import cli

    code = cli.main(
        ["cifar10", "--decov-weight", "-1", "--output", str(tmp_path / "c")]
    )
    assert code == 2
    assert "decov_weight" in capsys.readouterr().err
