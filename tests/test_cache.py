"""The checked array cache: damaged, foreign and outdated files are rebuilt."""

import json
import os
import stat
import struct
import warnings
import zipfile

import numpy as np
import pytest

from keras_disentangle import _cache

pytestmark = pytest.mark.backend_independent


class _Builder:
    """Counts its calls; returns fixed arrays."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {
            "x": np.arange(24, dtype="float32").reshape(2, 3, 4),
            "y": np.array([3, 1], dtype="int64"),
        }


def _check_arrays(arrays):
    assert sorted(arrays) == ["x", "y"]
    np.testing.assert_array_equal(
        arrays["x"], np.arange(24, dtype="float32").reshape(2, 3, 4)
    )
    assert arrays["x"].dtype == np.float32 and arrays["y"].tolist() == [3, 1]


def _rebuilt(path, version="1"):
    """Loads ``path`` through the cache: (arrays, builder calls, warnings)."""
    build = _Builder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arrays = _cache.cached_arrays(path, build, version=version)
    _check_arrays(arrays)
    return build.calls, [str(w.message) for w in caught]


def test_builds_once_then_loads(tmp_path):
    path = tmp_path / "deep" / "a.npz"
    assert _rebuilt(path) == (1, [])  # missing: built quietly, folder created
    assert _rebuilt(path) == (0, [])  # valid: loaded, no warning
    assert [p.name for p in path.parent.iterdir()] == ["a.npz"]  # no temp left


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path):
    path.write_bytes(b"")


def _flip_a_bit(path):
    # A bit of the stored (compressed) data of "x", not of the zip headers:
    # either zlib or the CRC or our checksum notices.
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("x.npy")
    start = info.header_offset
    name, extra = struct.unpack("<HH", data[start + 26 : start + 30])
    data[start + 30 + name + extra + info.compress_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _wrong_shapes(path):
    np.savez(path, x=np.zeros((5,)), y=np.zeros((7, 2)))  # foreign, no description


def _zeros_keeping_description(path):
    # The right names, shapes, dtypes and description; wrong content.
    with np.load(path) as stored:
        meta = stored[_cache.META_KEY]
        arrays = {k: np.zeros_like(stored[k]) for k in stored.files if k != "__x"}
    arrays[_cache.META_KEY] = meta
    np.savez_compressed(path, **arrays)


def _description_lists_other_arrays(path):
    with np.load(path) as stored:
        meta = json.loads(str(stored[_cache.META_KEY][()]))
        arrays = {k: stored[k] for k in stored.files}
    meta["arrays"]["z"] = meta["arrays"]["x"]
    arrays[_cache.META_KEY] = np.array(json.dumps(meta))
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize(
    "damage, why",
    [
        (_truncate, "cannot be read"),
        (_empty, "cannot be read"),
        (_flip_a_bit, ""),
        (_wrong_shapes, "not written by keras_disentangle"),
        (_zeros_keeping_description, "does not match its checksum"),
        (_description_lists_other_arrays, "does not match its contents"),
    ],
)
def test_damaged_file_is_rebuilt_with_one_warning(tmp_path, damage, why):
    path = tmp_path / "a.npz"
    _rebuilt(path)
    damage(path)
    calls, caught = _rebuilt(path)
    assert calls == 1 and len(caught) == 1
    assert str(path) in caught[0] and why in caught[0]
    assert _rebuilt(path) == (0, [])  # the rebuilt file is valid again


def test_other_version_is_rebuilt(tmp_path):
    path = tmp_path / "a.npz"
    _rebuilt(path, version="1")
    calls, caught = _rebuilt(path, version="2")
    assert calls == 1 and len(caught) == 1 and "version '1'" in caught[0]
    assert _rebuilt(path, version="2") == (0, [])


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_mode_follows_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        _rebuilt(tmp_path / "a.npz")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.npz").stat().st_mode) == mode


def test_unwritable_folder_still_returns_the_arrays(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _rebuilt(blocker / "a.npz") == (1, [])


def test_interrupted_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _cache.cached_arrays(tmp_path / "a.npz", _Builder())
    assert list(tmp_path.iterdir()) == []


def test_rejects_a_bad_build_result(tmp_path):
    with pytest.raises(ValueError, match="argument build"):
        _cache.cached_arrays(tmp_path / "a.npz", lambda: {"not an id": np.zeros(1)})
    with pytest.raises(ValueError, match="dtype object"):
        _cache.cached_arrays(
            tmp_path / "a.npz", lambda: {"x": np.array([None], dtype=object)}
        )
