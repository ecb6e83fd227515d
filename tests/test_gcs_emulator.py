"""gs:// paths against a loopback fake-gcs-server: etils.epath file ops and orbax checkpoints.

Also pins down orbax's commit protocol on GCS versus local storage, which resume logic relies on:
on ``gs://`` a step is written in place (no ``.orbax-checkpoint-tmp`` directory) and counts as
finalized only once ``<step>/commit_success.txt`` exists; locally it is written to
``<step>.orbax-checkpoint-tmp-<n>`` and renamed (the commit file is written too, but not checked).
"""

import os
import subprocess
import sys
import textwrap

import fsspec
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from etils import epath
from orbax.checkpoint._src.path import atomicity, atomicity_defaults

from tests.gcs_emulator import gcs_emulator

COMMIT = "commit_success.txt"
TMP_SUFFIX = ".orbax-checkpoint-tmp"


@pytest.fixture(scope="module")
def gcs():
    with gcs_emulator() as result:
        yield result


def _tree(step: int) -> dict:
    return {"w": jnp.arange(12.0).reshape(3, 4) + step, "b": jnp.full((5,), step, jnp.int32),
            "nested": {"x": jnp.float32(step)}}


def _files(root: str) -> list[str]:
    """All object keys under ``root`` (recursive), relative to it."""
    fs, base = fsspec.core.url_to_fs(root)  # gcsfs (token from fsspec.config) or local
    base = base.rstrip("/") + "/"
    return sorted(f[len(base):] for f in fs.find(base))


def test_epath_file_operations(gcs):
    bucket, _ = gcs
    run = epath.Path(f"gs://{bucket}/epath-run")
    assert type(run._backend).__name__ == "_FileSystemSpecBackend"  # gcsfs, not tf.io.gfile
    run.mkdir(parents=True, exist_ok=True)
    assert not run.exists()  # GCS has no directories: mkdir writes nothing (gcsfs no-op)
    (run / "a.txt").write_text("hello")
    assert run.exists() and run.is_dir() and (run / "a.txt").is_file()
    assert (run / "a.txt").read_text() == "hello"
    (run / "sub" / "b.txt").write_text("b")
    assert sorted(p.name for p in run.iterdir()) == ["a.txt", "sub"]
    assert sorted(p.name for p in run.glob("*")) == ["a.txt", "sub"]
    assert [str(p) for p in run.glob("*/*.txt")] == [f"gs://{bucket}/epath-run/sub/b.txt"]
    with pytest.raises(NotImplementedError):  # etils refuses recursive ** globs on gs://
        list(run.glob("**/*.txt"))
    # rename works, as a non-atomic copy + delete (gcsfs falls back: emulator lacks moveTo).
    (run / "a.txt").rename(run / "c.txt")
    (run / "sub").rename(run / "sub2")
    assert sorted(p.name for p in run.iterdir()) == ["c.txt", "sub2"]
    assert (run / "sub2" / "b.txt").read_text() == "b"
    with pytest.raises(FileExistsError):
        (run / "c.txt").rename(run / "sub2" / "b.txt")
    run.rmtree()
    assert not run.exists()


@pytest.mark.parametrize("async_save", [False, True], ids=["sync", "async"])
def test_orbax_checkpoint_manager(gcs, async_save):
    bucket, _ = gcs
    directory = f"gs://{bucket}/orbax-{'async' if async_save else 'sync'}/checkpoints"
    assert (atomicity_defaults.get_default_temporary_path_class(epath.Path(directory))
            is atomicity.CommitFileTemporaryPath)
    options = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=async_save)
    with ocp.CheckpointManager(directory, options=options) as manager:
        for step in (1, 2, 3):
            manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(_tree(step))))
        manager.wait_until_finished()
        assert manager.all_steps() == [2, 3]  # step 1 deleted through gcs_utils.rmtree

    files = _files(directory)
    print(f"\norbax files under {directory}:\n  " + "\n  ".join(files))
    assert {f"{s}/{COMMIT}" for s in (2, 3)} <= set(files)  # step-level commit file
    assert {f"{s}/state/{COMMIT}" for s in (2, 3)} <= set(files)  # item-level commit file
    assert not any(TMP_SUFFIX in f for f in files)  # written in place, never renamed
    assert not any(f.startswith("1/") for f in files)
    assert ocp.path.step.is_path_finalized(epath.Path(directory) / "3")

    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _tree(0))
    with ocp.CheckpointManager(directory, options=options) as manager:
        assert manager.latest_step() == 3
        restored = manager.restore(
            3, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 restored, _tree(3))

    # Without its commit file a step is "not finalized" and invisible to a new manager.
    (epath.Path(directory) / "3" / COMMIT).unlink()
    assert not ocp.path.step.is_path_finalized(epath.Path(directory) / "3")
    with ocp.CheckpointManager(directory, options=options) as manager:
        assert manager.all_steps() == [2]


def test_orbax_local_uses_atomic_rename(tmp_path):
    """Contrast: on local disk orbax writes <step>.orbax-checkpoint-tmp-<n>, then renames it."""
    directory = tmp_path / "checkpoints"
    assert (atomicity_defaults.get_default_temporary_path_class(epath.Path(directory))
            is atomicity.AtomicRenameTemporaryPath)
    options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    with ocp.CheckpointManager(directory, options=options) as manager:
        manager.save(1, args=ocp.args.Composite(state=ocp.args.StandardSave(_tree(1))))
    files = _files(str(directory))
    assert f"1/{COMMIT}" in files and not any(TMP_SUFFIX in f for f in files)
    # Locally the commit file is written (into the tmp dir, before the rename) but not checked:
    # finalized == a directory whose name lacks the tmp suffix.
    (directory / "1" / COMMIT).unlink()
    assert ocp.path.step.is_path_finalized(epath.Path(directory) / "1")
    tmp = directory / f"2{TMP_SUFFIX}-123"
    (tmp / "state").mkdir(parents=True)
    assert not ocp.path.step.is_path_finalized(epath.Path(tmp))
    assert ocp.path.step.is_path_temporary(epath.Path(tmp))


def test_env_is_enough_for_a_child_process(gcs):
    """The returned env alone lets a fresh process use epath and tensorstore on the bucket."""
    bucket, env = gcs
    epath.Path(f"gs://{bucket}/child/from_parent.txt").write_text("parent")
    code = textwrap.dedent(f"""
        import tensorstore as ts
        from etils import epath
        assert epath.Path("gs://{bucket}/child/from_parent.txt").read_text() == "parent"
        kv = ts.KvStore.open({{"driver": "gcs", "bucket": "{bucket}", "path": "child/"}}).result()
        kv.write("from_child.bin", b"child").result()
        print(epath.Path("gs://{bucket}/child/from_child.bin").read_bytes().decode())
    """)
    clean = {k: v for k, v in os.environ.items() if k not in env}  # nothing inherited from us
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "child"
