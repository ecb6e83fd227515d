"""Data sources: every supported layout loads the same samples; bad data fails clearly."""

import functools
import json
import pickle
import re

import grain
import h5py
import numpy as np
import pytest
import scipy.io

from fno import registry
from fno.data import burgers, darcy, dataset_dir, sources
from fno.data.checks import DataError
from fno.data.sources import open_dataset

N, S = 12, 64


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, S)), rng.standard_normal((N, S))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "ds"
    return burgers.generate_dataset(path, num_samples=6, resolution=S, seed=1)


def write_mat73(path, **named):
    """An HDF5 file laid out as MATLAB -v7.3 writes it: 512-byte header, arrays transposed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for key, value in named.items():
            f.create_dataset(key, data=np.asarray(value).T)
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 ."
    with open(path, "r+b") as f:  # 116 text bytes, 8 subsystem bytes, version 0x0200, 'IM'
        f.write(text.ljust(116) + bytes(8) + b"\x00\x02IM")


def write_h5(path, chunked=False, **named):
    with h5py.File(path, "w") as f:
        for key, value in named.items():
            kw = {"chunks": True, "compression": "gzip"} if chunked else {}
            f.create_dataset(key, data=value, **kw)


def layouts(tmp_path, a, u):
    """The same (a, u) in every supported file layout."""
    scipy.io.savemat(tmp_path / "v5.mat", {"a": a, "u": u})
    write_mat73(tmp_path / "v73.mat", a=a, u=u)
    write_h5(tmp_path / "plain.h5", a=a, u=u)
    write_h5(tmp_path / "chunked.hdf5", chunked=True, a=a, u=u)
    np.savez(tmp_path / "plain.npz", a=a, u=u)
    np.savez_compressed(tmp_path / "zipped.npz", a=a, u=u)
    return ["v5.mat", "v73.mat", "plain.h5", "chunked.hdf5", "plain.npz", "zipped.npz"]


# ------------------------------------------------------------------------------ happy paths


def test_every_layout_gives_the_same_samples(tmp_path, arrays):
    a, u = arrays
    for name in layouts(tmp_path, a, u):
        for res in (S, S // 4):
            src = open_dataset(tmp_path / name, res)
            sub = S // res
            assert (len(src), src.num_samples, src.resolution) == (N, N, res), name
            x, y = src.get_batch(np.arange(N))
            assert x.dtype == y.dtype == np.float32 and x.shape == (N, res)
            np.testing.assert_array_equal(x, a[:, ::sub].astype(np.float32), err_msg=name)
            np.testing.assert_array_equal(y, u[:, ::sub].astype(np.float32), err_msg=name)
    with pytest.raises(NotImplementedError):  # really a v7.3 file, as scipy sees it
        scipy.io.loadmat(tmp_path / "v73.mat")
    # Plain HDF5 is memory-mapped rather than read.
    assert isinstance(open_dataset(tmp_path / "plain.h5", S)._inputs, np.memmap)


def test_named_keys(tmp_path, arrays):
    a, u = arrays
    np.savez(tmp_path / "d.npz", init=a, final=u)
    write_h5(tmp_path / "d.h5", init=a, final=u)
    for name in ("d.npz", "d.h5"):
        x, y = open_dataset(tmp_path / name, S, input_key="init", output_key="final")[5].values()
        np.testing.assert_array_equal(x, a[5].astype(np.float32))
        np.testing.assert_array_equal(y, u[5].astype(np.float32))


def test_generated_directory(generated):
    src = open_dataset(generated, S // 2, expected_meta={
        "nu": 0.1, "t_final": 1.0, "seed": 1, "num_samples": 6, "resolution": S})
    assert isinstance(src._inputs, np.memmap) and src.resolution == S // 2
    u0 = np.load(generated / "u0.npy")
    u1 = np.load(generated / "u1.npy")
    np.testing.assert_array_equal(src[4]["x"], u0[4, ::2])
    np.testing.assert_array_equal(src[4]["y"], u1[4, ::2])


def test_get_batch_order_and_items(generated):
    src = open_dataset(generated, S)
    idx = np.array([5, 0, 3, 3, 1])
    x, y = src.get_batch(idx)
    np.testing.assert_array_equal(x, np.stack([src[int(i)]["x"] for i in idx]))
    np.testing.assert_array_equal(y, np.stack([src[int(i)]["y"] for i in idx]))
    assert src.get_batch(np.array([], dtype=int))[0].shape == (0, S)
    with pytest.raises(IndexError):
        src.get_batch(np.array([6]))
    with pytest.raises(IndexError):
        src[6]
    np.testing.assert_array_equal(src[-1]["x"], src[5]["x"])


def test_subset_and_repr(generated):
    src = open_dataset(generated, 16)
    assert repr(src) == f"ArraySource(path='{generated}', resolution=16, samples=[0:6])"
    train, test = src.subset(0, 4), src.subset(-2, None)
    assert repr(train) == f"ArraySource(path='{generated}', resolution=16, samples=[0:4])"
    assert repr(test) == f"ArraySource(path='{generated}', resolution=16, samples=[4:6])"
    assert len(train) == 4 and len(test) == 2 and test.resolution == 16
    np.testing.assert_array_equal(test.get_batch(np.array([1, 0]))[1],
                                  src.get_batch(np.array([5, 4]))[1])
    inner = test.subset(1, 2)
    assert repr(inner).endswith("samples=[5:6])")
    np.testing.assert_array_equal(inner[0]["x"], src[5]["x"])
    assert "0x" not in repr(src)
    for bad in ((0, 7), (4, 2), (-7, None)):
        with pytest.raises(DataError, match=re.escape(str(generated))):
            src.subset(*bad)


def test_pickles_by_reference(generated):
    src = open_dataset(generated, S).subset(1, 5)
    blob = pickle.dumps(src)
    assert len(blob) < 4096  # the memory map is re-opened, not copied
    back = pickle.loads(blob)
    assert repr(back) == repr(src) and isinstance(back._outputs, np.memmap)
    np.testing.assert_array_equal(back.get_batch(np.arange(4))[1], src.get_batch(np.arange(4))[1])


def test_works_as_a_grain_source(generated):
    src = open_dataset(generated, 32)
    ds = grain.MapDataset.source(src).batch(2)
    first = ds[0]
    np.testing.assert_array_equal(first["x"], src.get_batch(np.array([0, 1]))[0])


def test_expected_meta_for_files_without_metadata(tmp_path, arrays):
    np.savez(tmp_path / "d.npz", a=arrays[0], u=arrays[1])
    open_dataset(tmp_path / "d.npz", S, expected_meta={"num_samples": N, "nu": 0.1})
    with pytest.raises(DataError, match="num_samples is 12, expected 13"):
        open_dataset(tmp_path / "d.npz", S, expected_meta={"num_samples": 13})
    with pytest.raises(DataError, match="resolution is 64, expected 128"):
        open_dataset(tmp_path / "d.npz", S, expected_meta={"resolution": 128})


# ------------------------------------------------------------------------------- bad data


def copy_generated(src, dst):
    dst.mkdir()
    for name in ("u0.npy", "u1.npy", "meta.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def rewrite(directory, name, array):
    """Replace one array and update its checksum, so only the other checks can object."""
    np.save(directory / name, array)
    meta = json.loads((directory / "meta.json").read_text())
    meta["sha256"][name] = dataset_dir.file_sha256(directory / name)
    (directory / "meta.json").write_text(json.dumps(meta))


def bad_generated(tmp_path, generated, problem):
    d = copy_generated(generated, tmp_path / "bad")
    u1 = np.load(d / "u1.npy")
    if problem == "checksum":
        raw = bytearray((d / "u1.npy").read_bytes())
        raw[-3] ^= 0xFF
        (d / "u1.npy").write_bytes(bytes(raw))
        return d / "u1.npy", "sha256"
    if problem == "nan":
        u1[2, 7] = np.nan
        rewrite(d, "u1.npy", u1)
        return d / "u1.npy", "NaN"
    if problem == "shape":
        rewrite(d, "u1.npy", u1[:5])
        return d / "u1.npy", "does not match meta.json"
    if problem == "missing_array":
        (d / "u0.npy").unlink()
        return d / "u0.npy", "missing"
    if problem == "missing_meta":
        (d / "meta.json").unlink()
        return d, "no meta.json"
    if problem == "bad_json":
        (d / "meta.json").write_text("{oops")
        return d / "meta.json", "unreadable"
    if problem == "meta_mismatch":
        return d / "meta.json", "nu is 0.1, expected 0.2"
    raise AssertionError(problem)


@pytest.mark.parametrize("problem", ["checksum", "nan", "shape", "missing_array",
                                     "missing_meta", "bad_json", "meta_mismatch"])
def test_bad_generated_directory(tmp_path, generated, problem):
    culprit, message = bad_generated(tmp_path, generated, problem)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        open_dataset(tmp_path / "bad", S, expected_meta={"nu": 0.2} if problem ==
                     "meta_mismatch" else None)
    text = str(info.value)
    assert text.startswith(str(culprit)) and "\n" not in text


def bad_file(tmp_path, arrays, problem):
    a, u = arrays
    f = tmp_path / "bad.npz"
    if problem == "missing_file":
        return tmp_path / "absent.mat", "no such file", {}
    if problem == "missing_key":
        np.savez(f, a=a)
        return f, "no array 'u'", {}
    if problem == "rank":  # [1, N, S, 1]: neither [N, S] nor [N, S, C]
        np.savez(f, a=a[None, ..., None], u=u[None, ..., None])
        return f, "must have rank 2 [samples, points] or rank 3 [samples, points, channels]", {}
    if problem == "samples":
        np.savez(f, a=a, u=u[:-1])
        return f, "has 12 samples but 'u' has 11", {}
    if problem == "points":
        np.savez(f, a=a, u=u[:, :-2])
        return f, "points per sample", {}
    if problem in ("nan", "inf"):
        u = u.copy()
        u[3, 1] = np.nan if problem == "nan" else -np.inf
        np.savez(f, a=a, u=u)
        return f, "NaN or Inf (first in sample 3)", {}
    if problem == "complex":
        np.savez(f, a=a + 1j, u=u)
        return f, "non-real dtype", {}
    if problem in ("not_divisor", "zero_resolution", "negative_resolution"):
        np.savez(f, a=a, u=u)
        res = {"not_divisor": 48, "zero_resolution": 0, "negative_resolution": -2}[problem]
        return f, "resolution", {"resolution": res}
    if problem == "mat_v5_key":
        f = tmp_path / "bad.mat"
        scipy.io.savemat(f, {"a": a, "v": u})
        return f, "no variable 'u'", {}
    if problem == "mat_v73_key":
        f = tmp_path / "bad.mat"
        write_mat73(f, a=a, v=u)
        return f, "no dataset 'u'", {}
    if problem == "mat_v73_samples":
        f = tmp_path / "bad.mat"
        write_mat73(f, a=a, u=u[:-1])  # MATLAB's [N, S] view; stored transposed
        return f, "has 12 samples but 'u' has 11", {}
    if problem == "h5_nan":
        f = tmp_path / "bad.h5"
        u = u.copy()
        u[-1, -1] = np.nan
        write_h5(f, a=a, u=u)
        return f, "NaN or Inf (first in sample 11)", {}
    if problem == "garbage_mat":
        f = tmp_path / "bad.mat"
        f.write_bytes(b"definitely not a MATLAB file" * 10)
        return f, "not a readable MATLAB file", {}
    if problem == "text_mat":  # shorter than a MATLAB header: scipy's own MatReadError
        f = tmp_path / "bad.mat"
        f.write_text("a,u\n1,2\n")
        return f, "not a readable MATLAB file", {}
    if problem == "garbage_npz":
        f.write_bytes(b"not a zip")
        return f, "not a readable .npz", {}
    if problem == "suffix":
        f = tmp_path / "bad.csv"
        f.write_text("1,2\n")
        return f, "unsupported format", {}
    raise AssertionError(problem)


@pytest.mark.parametrize("problem", [
    "missing_file", "missing_key", "rank", "samples", "points", "nan", "inf", "complex",
    "not_divisor", "zero_resolution", "negative_resolution", "mat_v5_key", "mat_v73_key",
    "mat_v73_samples", "h5_nan", "garbage_mat", "text_mat", "garbage_npz", "suffix"])
def test_bad_files(tmp_path, arrays, problem):
    culprit, message, kw = bad_file(tmp_path, arrays, problem)
    with pytest.raises(DataError, match=re.escape(message)) as info:
        open_dataset(culprit, kw.get("resolution", S))
    text = str(info.value)
    assert text.startswith(str(culprit)) and "\n" not in text
    assert isinstance(info.value, ValueError)


def test_checksums_are_verified_once_per_file_version(tmp_path, generated, monkeypatch):
    d = copy_generated(generated, tmp_path / "copy")
    calls = []
    real = dataset_dir.file_sha256
    monkeypatch.setattr(dataset_dir, "file_sha256", lambda p: calls.append(p) or real(p))
    open_dataset(d, S)
    open_dataset(d, S // 2)
    assert len(calls) == 2  # u0 and u1, once
    u1 = np.load(d / "u1.npy")
    u1[0, 0] += 1
    np.save(d / "u1.npy", u1)  # a new file version is checked again, and fails
    with pytest.raises(DataError, match="sha256"):
        open_dataset(d, S)
    assert sources._VERIFIED  # the cache is keyed by path, size, mtime and inode


def test_darcy_directory_opens_on_vertex_subgrids(tmp_path):
    """A generated Darcy directory ([N, S, S], names from meta.json's "files") is served on
    the vertex subgrids of its 2D grid (the grid kind of its registration), both boundaries
    kept, as darcy.subsample does."""
    path = darcy.generate_dataset(tmp_path / "darcy", num_samples=4, resolution=43)
    a = np.load(path / "a.npy")
    u = np.load(path / "u.npy")
    open_at = functools.partial(open_dataset, path, grid=registry.PROBLEMS["darcy"].grid)
    for resolution, step in ((43, 1), (22, 2), (15, 3)):
        source = open_at(resolution)
        assert source.resolution == resolution and len(source) == 4
        x, y = source.get_batch(np.array([3, 0]))
        np.testing.assert_array_equal(x, a[[3, 0], ::step, ::step])
        np.testing.assert_array_equal(y, u[[3, 0], ::step, ::step])
        np.testing.assert_array_equal(source.subset(1, 3)[0]["y"], u[1, ::step, ::step])
        assert source[0]["x"].shape == (resolution, resolution)
    with pytest.raises(DataError, match=r"darcy: resolution 20 is not a subgrid of 43"):
        open_at(20)
    data = bytearray((path / "u.npy").read_bytes())
    data[len(data) // 2] ^= 0xFF  # an interior value (the boundary ones are exactly 0)
    (path / "u.npy").write_bytes(bytes(data))
    with pytest.raises(DataError, match="sha256 does not match"):
        open_at(43)


def test_directories_without_files_in_meta_read_with_the_registered_names(tmp_path,
                                                                         generated):
    """Burgers caches written before meta.json named its arrays ("files") still read, with
    the names of Burgers' registration; without such names it is one line, not a guess."""
    d = copy_generated(generated, tmp_path / "old")
    meta = json.loads((d / "meta.json").read_text())
    assert meta["files"] == {"input": "u0.npy", "output": "u1.npy"}
    del meta["files"]
    (d / "meta.json").write_text(json.dumps(meta))
    source = open_dataset(d, S, files=registry.PROBLEMS["burgers"].files)
    assert source.arrays == ("u0.npy", "u1.npy")
    np.testing.assert_array_equal(source[2]["y"], np.load(d / "u1.npy")[2])
    with pytest.raises(DataError, match="has no 'files' naming the input and output") as info:
        open_dataset(d, S)
    assert str(info.value).startswith(str(d / "meta.json")) and "\n" not in str(info.value)


def test_two_dimensional_files_in_every_layout(tmp_path):
    """[N, S, S] arrays (the original Darcy files: keys coeff and sol on the 421 vertex grid)
    in every file layout, served on vertex subgrids; a periodic or auto grid on request."""
    rng = np.random.default_rng(3)
    coeff, sol = rng.standard_normal((2, 5, 13, 13))
    scipy.io.savemat(tmp_path / "v5.mat", {"coeff": coeff, "sol": sol})
    write_mat73(tmp_path / "v73.mat", coeff=coeff, sol=sol)
    write_h5(tmp_path / "plain.h5", coeff=coeff, sol=sol)
    np.savez(tmp_path / "plain.npz", coeff=coeff, sol=sol)
    for name in ("v5.mat", "v73.mat", "plain.h5", "plain.npz"):
        for resolution, step in ((13, 1), (7, 2), (5, 3)):
            source = open_dataset(tmp_path / name, resolution, input_key="coeff",
                                  output_key="sol", grid_rank=2, grid="vertex")
            x, y = source.get_batch(np.array([4, 1]))
            np.testing.assert_array_equal(x, coeff[[4, 1], ::step, ::step].astype(np.float32),
                                          err_msg=name)
            np.testing.assert_array_equal(y, sol[[4, 1], ::step, ::step].astype(np.float32))
            assert source.grid == "vertex"
            np.testing.assert_array_equal(source.on_stored_grid().get_batch(np.array([0]))[0],
                                          coeff[:1].astype(np.float32))
    np.savez(tmp_path / "even.npz", a=coeff[:, :12, :12], u=sol[:, :12, :12])
    assert open_dataset(tmp_path / "even.npz", 6, grid_rank=2, grid="auto").grid == "periodic"
    assert open_dataset(tmp_path / "plain.npz", 7, input_key="coeff", output_key="sol",
                        grid_rank=2, grid="auto").grid == "vertex"
    # Read by a model with one grid axis, [N, 13, 13] would be 13 channels: refused.
    with pytest.raises(DataError, match=r"13 channels as many as its points per grid axis"):
        open_dataset(tmp_path / "plain.npz", 13, input_key="coeff", output_key="sol")
    with pytest.raises(DataError, match="is not a subgrid of 13"):
        open_dataset(tmp_path / "plain.npz", 6, input_key="coeff", output_key="sol",
                     grid_rank=2, grid="vertex")
    np.savez(tmp_path / "oblong.npz", a=coeff[:, :, :7], u=sol[:, :, :7])
    with pytest.raises(DataError, match="same number of points"):
        open_dataset(tmp_path / "oblong.npz", 7, grid_rank=2)
