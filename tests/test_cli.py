"""The keras-disentangle command line, the shared helpers and ``cifar10``."""

import csv
import io
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import keras_disentangle_cli
from keras_disentangle import cli
from keras_disentangle.experiments import MODULES, _common

_LIGHT_CHECK = """
import sys, keras_disentangle_cli as cli
codes = [
    cli.run(["--help"]),
    cli.run(["--version"]),
    cli.run(["xor", "--epochs", "0"]),
    cli.run(["xor", "--weight", "-1"]),
    cli.run(["covariance", "--help"]),
]
heavy = ["keras", "tensorflow", "jax", "torch", "keras_disentangle"]
print("RESULT", codes, [m for m in heavy if m in sys.modules])
"""


def test_help_version_and_misuse_answer_without_importing_keras():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", _LIGHT_CHECK],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last == "RESULT [0, 0, 2, 2, 0] []", last
    text = result.stdout
    names = ["forced-to-learn", "covariance", "xor", "cifar10", "conv-autoencoder"]
    positions = [text.find("\n    " + name) for name in names]
    assert all(p > 0 for p in positions), text
    assert positions == sorted(positions)  # forced-to-learn first: the default
    assert "UD_90% against" in text  # a "%" in a help text is escaped
    assert "--l1-lambdas" in text  # the subcommand's own options
    errors = result.stderr.strip().splitlines()
    assert [line for line in errors if "error:" in line] == [
        "keras-disentangle xor: error: argument --epochs: expected an integer "
        ">= 1, received '0'",
        "keras-disentangle xor: error: argument --weight: expected a finite "
        "number >= 0, received '-1'",
    ]
    assert "Traceback" not in result.stderr


def test_every_subcommand_has_the_common_options(tmp_path):
    parser = cli.build_parser()
    for name in ["forced-to-learn", "covariance", "xor", "cifar10"]:
        args = parser.parse_args([name])
        assert str(args.output).endswith(os.path.join("results", name))
        assert args.quick is False and args.seeds is None and args.epochs is None
        assert args.verbose == 1 and args._module.startswith("keras_disentangle.")
        assert args.overwrite is False and args._outputs
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
    assert cli.main(["covariance", "--seeds", "many"]) == 2
    assert "argument --seeds: expected an integer >= 1" in capsys.readouterr().err


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
    assert "argument --decov-weight" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------- misuse and Ctrl-C

NAMES = ["forced-to-learn", "covariance", "xor", "cifar10"]


def _bad_common_options(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("user data")
    return [
        (["--epochs", "-1"], "--epochs"),
        (["--epochs", "0"], "--epochs"),
        (["--seeds", "0"], "--seeds"),
        (["--seeds", "two"], "--seeds"),
        (["--output", "/proc/x"], "--output"),
        (["--output", str(a_file)], "--output"),
        (["--output", str(a_file / "sub")], "--output"),
    ]


@pytest.mark.parametrize("name", NAMES)
def test_bad_common_options_exit_2_at_parse_time(name, tmp_path, capsys):
    parser = cli.build_parser()
    for argv, option in _bad_common_options(tmp_path):
        with pytest.raises(SystemExit) as info:
            parser.parse_args([name, *argv])
        assert info.value.code == 2, argv
        err = capsys.readouterr().err
        assert f"argument {option}" in err and "Traceback" not in err, err
        assert err.strip().splitlines()[-1].startswith("keras-disentangle "), err
    assert (tmp_path / "a_file").read_text() == "user data"


def _fake_module(monkeypatch, main, outputs=("later*.csv",)):
    """An experiment module ``later`` (registered in ``sys.modules``)."""
    module = types.ModuleType("kd_test_later")
    module.NAME, module.HELP, module.OUTPUTS = "later", "added later", outputs
    module.configure = lambda parser: None
    module.main = main
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def test_an_experiment_added_later_gets_the_checks(tmp_path, capsys, monkeypatch):
    parser = cli.build_parser([_fake_module(monkeypatch, lambda args: 0)])
    with pytest.raises(SystemExit):
        parser.parse_args(["later", "--seeds", "0"])
    assert "argument --seeds" in capsys.readouterr().err
    args = parser.parse_args(["later", "--output", str(tmp_path / "new" / "dir")])
    assert not (tmp_path / "new").exists()  # parsing creates nothing
    assert args.verbose == 1 and args._module == "kd_test_later"
    assert parser.parse_args(["later", "--verbose"]).verbose == 2
    assert parser.parse_args(["later", "--verbose", "0"]).verbose == 0


def test_ctrl_c_prints_one_line_and_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    module = _fake_module(monkeypatch, interrupted)
    argv = ["later", "--output", str(tmp_path)]
    assert keras_disentangle_cli.run(argv, modules=[module]) == 130
    captured = capsys.readouterr()
    assert captured.err == "keras-disentangle: interrupted\n"
    assert captured.out == f"keras-disentangle later: writing results to {tmp_path}\n"


# ------------------------------------------------------------ output files


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "table.csv"
    target.write_text("the previous complete file\n")
    calls = []

    def interrupted_writerow(self, row):
        calls.append(row)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, row)

    original = csv.DictWriter.writerow
    monkeypatch.setattr(csv.DictWriter, "writerow", interrupted_writerow)
    with pytest.raises(KeyboardInterrupt):
        _common.write_csv([{"a": 1}, {"a": 2}, {"a": 3}], target)
    assert target.read_text() == "the previous complete file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_failed_figure_leaves_no_file(tmp_path):
    fig = _common.new_figure()

    def broken(path, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG half")
        raise KeyboardInterrupt

    fig.savefig = broken
    with pytest.raises(KeyboardInterrupt):
        _common.save_figure(fig, tmp_path / "plot.png")
    assert list(tmp_path.iterdir()) == []


def test_a_rerun_removes_its_own_previous_files_only(tmp_path):
    args = types.SimpleNamespace(output=tmp_path / "out")
    out = _common.output_dir(args, "x")
    _common.write_csv([{"a": 1}], out / "first.csv")
    fig = _common.new_figure()
    fig.subplots().plot([0, 1])
    _common.save_figure(fig, out / "old_plot.png")
    (out / "mine.txt").write_text("a user's file")
    out = _common.output_dir(args, "x")  # the rerun
    _common.write_csv([{"a": 2}], out / "second.csv")
    names = sorted(p.name for p in out.iterdir())
    assert names == [_common.MANIFEST, "mine.txt", "second.csv"]
    # A manifest that names something outside the folder is ignored.
    entry = json.loads((out / _common.MANIFEST).read_text())["files"]["second.csv"]
    files = {"../outside.txt": entry, "second.csv": entry}
    (out / _common.MANIFEST).write_text(json.dumps({"version": 2, "files": files}))
    (tmp_path / "outside.txt").write_text("keep")
    _common.output_dir(args, "x")
    assert (tmp_path / "outside.txt").exists() and (out / "mine.txt").exists()
    assert not (out / "second.csv").exists()


# ---------------------------------------------------------------- progress


def test_run_progress_lines_eta_and_quiet():
    stream = io.StringIO()
    bar = _common.RunProgress(4, label="demo", stream=stream, every=0)
    assert _common.RunProgress.active is bar
    bar.advance()
    bar.advance(3)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[demo] 1/4 epochs (25%) ETA ")
    assert lines[-1].startswith("[demo] 4/4 epochs (100%), ")
    assert _common.RunProgress.active is None
    quiet = io.StringIO()
    bar = _common.RunProgress(4, stream=quiet, enabled=False)
    bar.advance(4)
    bar.close()
    assert quiet.getvalue() == ""


def test_run_progress_redraws_one_line_on_a_terminal(capsys):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = _common.RunProgress(2, label="t", stream=stream)
    bar.advance()
    _common.progress("a log line")  # clears the bar, prints, redraws
    bar.advance()
    bar.close()
    text = stream.getvalue()
    assert text.count("\r\033[K[") == 3 and text.endswith("\n")
    assert "\n" not in text[:-1]
    assert capsys.readouterr().out == "a log line\n"


def test_run_progress_callback_counts_every_epoch_of_every_fit():
    import keras

    stream = io.StringIO()
    bar = _common.RunProgress(5, label="fit", stream=stream, every=0)
    x = np.zeros((8, 2), "float32")
    for epochs in (2, 3):
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse")
        model.fit(x, x[:, :1], epochs=epochs, verbose=0, callbacks=[bar.callback()])
    bar.close()
    assert bar.done == 5
    assert stream.getvalue().splitlines()[-1].startswith("[fit] 5/5 epochs")


# ------------------------------------------------------ environment, labels


def _fresh(code):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_the_package_leaves_the_environment_alone():
    # TensorFlow itself sets TF_CPP_MIN_LOG_LEVEL=1 when it is imported; the
    # package adds nothing to what importing Keras does to the environment.
    # (The command line sets TF_CPP_MIN_LOG_LEVEL=2 in its process:
    # tests/test_cli_files.py checks that its stderr has no start-up line.)
    code = (
        "import os\n"
        "import keras\n"
        "before = dict(os.environ)\n"
        "import keras_disentangle, keras_disentangle.datasets\n"
        "import keras_disentangle.cli\n"
        "print(dict(os.environ) == before)"
    )
    assert _fresh(code) == "True"


def test_binary_targets_one_rule_for_every_experiment():
    from keras_disentangle.experiments import cifar10

    out = _common.binary_targets(np.array([0, 4, 5, 9, 3]))
    assert out.dtype == np.float32 and out.tolist() == [0, 0, 1, 1, 0]
    animals = _common.binary_targets([0, 2, 8], cifar10.GROUPS["animals-vehicles"])
    assert animals.tolist() == [1, 0, 1]
    assert cifar10.GROUPS["first-last"] == _common.FIRST_LAST
    with pytest.raises(ValueError, match="labels"):
        _common.binary_targets([10])
