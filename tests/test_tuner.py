"""keras-tuner end to end: ClusteringScores' val_cluster_ami as the search objective."""

import csv
import importlib.util
import pathlib

import keras
import pytest

keras_tuner = pytest.importorskip("keras_tuner")
pytest.importorskip("tensorboard")

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "tune_margin.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("tune_margin", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# keras-tuner deep-copies the callbacks of every trial; the copies of this
# recorder all append to the one list at module level.
_LOGGED = []


class _Recorder(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        _LOGGED.append(logs["val_cluster_ami"])


def test_random_search_objective_is_the_best_logged_val_cluster_ami(tmp_path):
    from keras_disentangle.datasets import digits

    example = _load_example()
    _LOGGED.clear()
    csv_path = tmp_path / "epochs.csv"
    tuner = example.search(
        digits(),
        trials=2,
        epochs=2,
        directory=str(tmp_path / "tuner"),
        extra_callbacks=[
            keras.callbacks.CSVLogger(str(csv_path), append=True),
            _Recorder(),
        ],
    )
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2
    assert all(t.status == "COMPLETED" for t in trials)
    margins = {t.hyperparameters.values["margin"] for t in trials}
    assert len(margins) == 2  # two different penalties were tried
    assert len(_LOGGED) == 4  # 2 trials x 2 epochs
    with open(csv_path) as f:
        csv_ami = [float(row["val_cluster_ami"]) for row in csv.DictReader(f)]
    assert csv_ami == pytest.approx(_LOGGED)

    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == pytest.approx(max(_LOGGED))
    # Trials run one after the other: each one's score is the best of the two
    # val_cluster_ami it logged, and that is what keras-tuner recorded for it.
    ordered = sorted(trials, key=lambda t: int(t.trial_id))
    for i, trial in enumerate(ordered):
        assert trial.score == pytest.approx(max(_LOGGED[2 * i : 2 * i + 2]))
        recorded = [o.mean() for o in trial.metrics.get_history("val_cluster_ami")]
        assert trial.score == pytest.approx(max(recorded))
