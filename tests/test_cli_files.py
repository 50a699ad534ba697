"""The command line's file contract, signals, start-up lines and reruns.

In-process wherever possible (``keras_disentangle_cli.run`` with a fake
experiment module); two subprocesses: one TensorFlow run (start-up lines,
first line, two identical runs) and one SIGTERM that lands during the import.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import types

import pytest

import keras_disentangle_cli
from keras_disentangle.experiments import _common
from keras_disentangle_cli._stderr import is_startup_line

pytestmark = pytest.mark.backend_independent

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module(monkeypatch, main, outputs=("later.csv", "later_*.csv")):
    """A fake experiment ``later`` that records its runs."""
    module = types.ModuleType("kd_test_files_later")
    module.NAME, module.HELP, module.OUTPUTS = "later", "a test experiment", outputs
    module.configure = lambda parser: parser.add_argument(
        "--weight", type=_common.non_negative_float, default=0.5
    )
    module.main = main
    module.runs = []
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return module


def _writes(name="later.csv", text="x"):
    def main(args):
        out = _common.output_dir(args, "later")
        _common.write_csv([{"value": text}], out / name)
        return 0

    return main


def _run(module, *argv):
    return keras_disentangle_cli.run(["later", *map(str, argv)], modules=[module])


# ------------------------------------------------------------ file contract


def test_a_users_file_with_an_output_name_stops_the_run(tmp_path, monkeypatch, capsys):
    module = _module(monkeypatch, _writes())
    (tmp_path / "later.csv").write_text("the user's own table\n")
    assert _run(module, "--output", tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "later.csv" in err[0] and "--overwrite" in err[0]
    assert (tmp_path / "later.csv").read_text() == "the user's own table\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["later.csv"]
    # --overwrite replaces it, and then the package owns it.
    assert _run(module, "--output", tmp_path, "--overwrite") == 0
    assert (tmp_path / "later.csv").read_text() == "value\nx\n"
    assert _run(module, "--output", tmp_path) == 0


def test_a_file_appearing_during_the_run_is_not_replaced(tmp_path, monkeypatch):
    def main(args):
        out = _common.output_dir(args, "later")
        (out / "undeclared.csv").write_text("the user's")
        _common.write_csv([{"value": 1}], out / "undeclared.csv")
        return 0

    module = _module(monkeypatch, main, outputs=())
    assert _run(module, "--output", tmp_path) == 2
    assert (tmp_path / "undeclared.csv").read_text() == "the user's"


def test_an_undeclared_output_name_is_a_bug(tmp_path, monkeypatch):
    module = _module(monkeypatch, _writes("other.csv"))
    with pytest.raises(ValueError, match="'other.csv' matches none"):
        _run(module, "--output", tmp_path)
    assert not (tmp_path / "other.csv").exists()


def test_manifest_lists_size_and_hash_and_guards_changed_files(tmp_path, monkeypatch):
    module = _module(monkeypatch, _writes("later_a.csv"))
    assert _run(module, "--output", tmp_path) == 0
    manifest = json.loads((tmp_path / _common.MANIFEST).read_text())
    entry = manifest["files"]["later_a.csv"]
    data = (tmp_path / "later_a.csv").read_bytes()
    assert entry["size"] == len(data) and len(entry["sha256"]) == 64
    # The user edits the output: it is theirs now; the next run stops.
    (tmp_path / "later_a.csv").write_text("value\nedited\n")
    assert _run(module, "--output", tmp_path) == 2
    assert (tmp_path / "later_a.csv").read_text() == "value\nedited\n"


def test_a_name_added_to_the_manifest_is_not_deleted(tmp_path, monkeypatch):
    module = _module(monkeypatch, _writes("later_a.csv"))
    assert _run(module, "--output", tmp_path) == 0
    (tmp_path / "notes.txt").write_text("mine")
    manifest = json.loads((tmp_path / _common.MANIFEST).read_text())
    manifest["files"]["notes.txt"] = manifest["files"]["later_a.csv"]
    (tmp_path / _common.MANIFEST).write_text(json.dumps(manifest))
    assert _run(module, "--output", tmp_path) == 0
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_leftover_temporary_files_of_a_killed_run_are_removed(tmp_path):
    leftovers = [".xor_seed0.png.k2_a9zq1.part.png", ".xor.csv.abcdefgh.part.csv"]
    for name in leftovers:
        (tmp_path / name).write_bytes(b"half")
    kept = [".notes.part", "draft.part.png", ".xor.csv.ABCDEFGH.part.csv"]
    for name in kept:
        (tmp_path / name).write_text("user")
    _common.output_dir(types.SimpleNamespace(output=tmp_path), "xor")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(kept + [_common.MANIFEST])


@pytest.mark.parametrize(
    "argv, option",
    [
        (["xor", "--units", "0"], "--units"),
        (["xor", "--weight", "-1"], "--weight"),
        (["xor", "--learning-rate", "0"], "--learning-rate"),
        (["covariance", "--lambdas", "0,-1"], "--lambdas"),
        (["covariance", "--lambdas", ""], "--lambdas"),
        (["covariance", "--l1-lambdas", "-0.1"], "--l1-lambdas"),
        (["covariance", "--variances", "4,0"], "--variances"),
        (["covariance", "--batch-size", "0"], "--batch-size"),
        (["forced-to-learn", "--decov-weight", "-1"], "--decov-weight"),
        (["forced-to-learn", "--single-margin", "nan"], "--single-margin"),
        (["forced-to-learn", "--variants", "xcov,nope"], "--variants"),
        (["forced-to-learn", "--n-clusters", "1"], "--n-clusters"),
        (["forced-to-learn", "--rnn-units", "0"], "--rnn-units"),
        (["cifar10", "--multi-weight", "-2"], "--multi-weight"),
        (["cifar10", "--width", "0"], "--width"),
        (["conv-autoencoder", "--lambdas", "-1"], "--lambdas"),
        (["conv-autoencoder", "--patience", "0"], "--patience"),
    ],
)
def test_bad_experiment_option_exits_2_before_deleting(tmp_path, capsys, argv, option):
    # A previous run's files, owned by the package (in the manifest).
    _common.output_dir(types.SimpleNamespace(output=tmp_path), "x")
    _common.write_csv([{"a": 1}], tmp_path / "xor.csv")
    before = sorted(p.name for p in tmp_path.iterdir())
    code = keras_disentangle_cli.run([*argv, "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and f"argument {option}:" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ------------------------------------------------------------------ signals


@pytest.fixture
def handlers():
    """The command line's signal handlers, for one test."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    keras_disentangle_cli._received.clear()
    keras_disentangle_cli._install_signal_handlers()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    keras_disentangle_cli._received.clear()


@pytest.mark.parametrize(
    "signum, status, word",
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
)
def test_a_signal_during_a_write_exits_with_one_line_and_no_temporary_file(
    tmp_path, monkeypatch, capsys, handlers, signum, status, word
):
    def main(args):
        out = _common.output_dir(args, "later")
        fig = _common.new_figure()

        def savefig(path, **kwargs):
            pathlib.Path(path).write_bytes(b"\x89PNG half")
            os.kill(os.getpid(), signum)
            time.sleep(5)  # the handler raises before this ends

        fig.savefig = savefig
        _common.save_figure(fig, out / "later_plot.png")
        return 0

    module = _module(monkeypatch, main, outputs=("later_plot.png",))
    assert _run(module, "--output", tmp_path) == status
    captured = capsys.readouterr()
    assert captured.err == f"keras-disentangle: {word}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [_common.MANIFEST]


def test_a_signal_turned_into_another_error_still_exits_130(
    tmp_path, monkeypatch, capsys, handlers
):
    # A library that catches the KeyboardInterrupt (e.g. in an import) and
    # raises its own error instead.
    def main(args):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except BaseException as error:
            raise RuntimeError("wrapped") from error
        return 0

    module = _module(monkeypatch, main)
    assert _run(module, "--output", tmp_path) == 130
    assert capsys.readouterr().err == "keras-disentangle: interrupted\n"


def _env():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["KERAS_BACKEND"] = "tensorflow"
    return env


def test_sigterm_while_tensorflow_is_imported_exits_143(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_disentangle_cli", "xor", "--quick"]
        + ["--output", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=ROOT,
    )
    try:
        first = process.stdout.readline()  # printed before Keras is imported
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert first == f"keras-disentangle xor: writing results to {tmp_path}\n"
    assert process.returncode == 143, err
    assert err == "keras-disentangle: terminated\n"
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]


# ------------------------------------------- start-up lines, identical reruns

_TWICE = """
import sys
from keras_disentangle_cli import main
for folder in sys.argv[1:]:
    status = main(["xor", "--quick", "--epochs", "5", "--verbose", "0",
                   "--output", folder])
    assert status == 0, status
"""


def test_runs_are_identical_and_stderr_has_no_startup_line(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    result = subprocess.run(
        [sys.executable, "-c", _TWICE, str(first), str(second)],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == f"keras-disentangle xor: writing results to {first}"
    # (The second run in the same process may add TensorFlow's Python-level
    # "retracing" warning: not a start-up line, and kept.)
    for word in ("absl::InitializeLog", "cudart_stub", "cuInit", "cpu_feature"):
        assert word not in result.stderr, result.stderr
    assert not any(map(is_startup_line, result.stderr.splitlines()))
    for name in ("xor.csv", "xor_runs.csv"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
