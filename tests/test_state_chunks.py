"""How a chunk task reads the fold baseline and carries unchanged state chunks over (pipelines/mining_change.py)."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import zarr

from geo_monitor import change
from pipelines.mining_change import FOLD_ARRAY, _ChunkFiles, _create_baseline_store, _create_store, \
    _fold_baseline_chunk, write_baseline

SHAPE = (70, 50)  # 3 x 2 chunks of 32 px, the last row and column of them partial
STEP = 32


def _baseline(path: Path) -> None:
    rng = np.random.default_rng(4)
    _create_baseline_store(path, SHAPE, STEP)
    group = zarr.open_group(str(path), mode="r+")
    for r in range(0, SHAPE[0], STEP):
        for c in range(0, SHAPE[1], STEP):
            window = (slice(r, min(r + STEP, SHAPE[0])), slice(c, min(c + STEP, SHAPE[1])))
            h, w = window[0].stop - r, window[1].stop - c
            base = {name: rng.uniform(0.01, 0.5, (h, w)).astype(np.float32) for name in change.BASELINE_VARS}
            base["base_eligible"][rng.random((h, w)) < 0.2] = 0  # FOLD_NODATA in fold_ndvi there
            write_baseline(group, window, base)


def _maps_a_file(array: np.ndarray) -> bool:
    owner = array
    while isinstance(owner, np.ndarray) and not isinstance(owner, np.memmap):
        owner = owner.base
    return isinstance(owner, (np.memmap, mmap.mmap))


def test_the_mapped_fold_baseline_equals_the_zarr_read_on_every_chunk(tmp_path: Path) -> None:
    _baseline(tmp_path / "b.zarr")
    array = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")[FOLD_ARRAY]
    for by in range(3):
        for bx in range(2):
            window = (slice(by * STEP, min((by + 1) * STEP, SHAPE[0])), slice(bx * STEP, min((bx + 1) * STEP, SHAPE[1])))
            mapped = _fold_baseline_chunk(str(tmp_path / "b.zarr"), window, (by, bx))
            assert _maps_a_file(mapped)  # the fast path was taken
            np.testing.assert_array_equal(mapped, array[(slice(None), *window)])
    assert (array[:] == change.FOLD_NODATA).any()


def test_a_window_that_is_not_one_stored_chunk_is_read_through_zarr(tmp_path: Path) -> None:
    _baseline(tmp_path / "b.zarr")
    window = (slice(16, 48), slice(0, 32))  # straddles two stored chunks
    got = _fold_baseline_chunk(str(tmp_path / "b.zarr"), window, (0, 0))
    np.testing.assert_array_equal(got, zarr.open_group(str(tmp_path / "b.zarr"), mode="r")[FOLD_ARRAY][:, 16:48, 0:32])


def test_a_carried_chunk_reads_the_same_in_the_new_version(tmp_path: Path) -> None:
    old, new = tmp_path / "v1.zarr", tmp_path / "v2.zarr"
    for path in (old, new):
        _create_store(path, change.STATE_VARS, SHAPE, STEP)
    values = np.arange(STEP * 18, dtype=np.uint16).reshape(STEP, 18)
    zarr.open_group(str(old), mode="r+")["n_unclear"][32:64, 32:50] = values
    out = zarr.open_group(str(new), mode="r+")
    window = (slice(32, 64), slice(32, 50))
    assert not _ChunkFiles(str(new), (1, 1), window).link(out["n_unclear"], "n_unclear")  # nothing to link from
    assert _ChunkFiles(str(new), (1, 1), window, previous=str(old)).link(out["n_unclear"], "n_unclear")
    np.testing.assert_array_equal(zarr.open_group(str(new), mode="r")["n_unclear"][32:64, 32:50], values)
    assert not zarr.open_group(str(new), mode="r")["n_unclear"][:32].any()  # nothing else appeared


def test_chunks_written_directly_read_back_through_zarr(tmp_path: Path) -> None:
    """The direct write produces the very files Zarr would: interior and edge chunks, every dtype of the state."""
    _create_store(tmp_path / "v.zarr", change.STATE_VARS, SHAPE, STEP)
    out = zarr.open_group(str(tmp_path / "v.zarr"), mode="r+")
    rng = np.random.default_rng(8)
    expected = {}
    for name, dtype in change.STATE_VARS.items():
        for by, bx in ((0, 0), (2, 1)):  # (2, 1) is the partial corner chunk
            window = (slice(by * STEP, min((by + 1) * STEP, SHAPE[0])), slice(bx * STEP, min((bx + 1) * STEP, SHAPE[1])))
            shape = (window[0].stop - window[0].start, window[1].stop - window[1].start)
            value = (rng.random(shape) * 200).astype(dtype)
            _ChunkFiles(str(tmp_path / "v.zarr"), (by, bx), window).write(out[name], name, value)
            expected[name, by, bx] = (window, value)
    back = zarr.open_group(str(tmp_path / "v.zarr"), mode="r")
    for (name, _, _), (window, value) in expected.items():
        np.testing.assert_array_equal(back[name][window], value, err_msg=name)
    assert not back["n_unclear"][32:64].any()  # chunks never written still read as the fill value


def test_arrays_of_another_encoding_are_written_through_zarr(tmp_path: Path) -> None:
    _baseline(tmp_path / "b.zarr")
    group = zarr.open_group(str(tmp_path / "b.zarr"), mode="r+")
    value = np.full((32, 32), 0.25, np.float32)  # base_blue: float, NaN fill value
    _ChunkFiles(str(tmp_path / "b.zarr"), (1, 0), (slice(32, 64), slice(0, 32))).write(group["base_blue"], "base_blue", value)
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "b.zarr"), mode="r")["base_blue"][32:64, 0:32], value)


def test_chunks_read_directly_equal_zarr_reads(tmp_path: Path) -> None:
    _create_store(tmp_path / "v.zarr", change.STATE_VARS, SHAPE, STEP)
    group = zarr.open_group(str(tmp_path / "v.zarr"), mode="r+")
    values = (np.random.default_rng(2).random(SHAPE) * 300).astype(np.uint16)
    group["n_unclear"][:] = values
    group["n_unclear"][:32, :32] = 0  # an all-zero chunk: Zarr does not store it
    for by, bx in ((0, 0), (1, 1), (2, 1)):
        window = (slice(by * STEP, min((by + 1) * STEP, SHAPE[0])), slice(bx * STEP, min((bx + 1) * STEP, SHAPE[1])))
        got = _ChunkFiles("unused", (by, bx), window, previous=str(tmp_path / "v.zarr")).read_previous(
            group["n_unclear"], "n_unclear")
        np.testing.assert_array_equal(got, group["n_unclear"][window])
        got[...] = 1  # writable: the update works on it in place
