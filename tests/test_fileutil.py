"""``encodec_np.fileutil``: atomic outputs and the temporary files of dead writers."""
import os

import pytest

from encodec_np import EncodecError, fileutil


def parts(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_output_appears_only_when_complete(tmp_path):
    out = tmp_path / "o.bin"
    with pytest.raises(RuntimeError):
        with fileutil.atomic_output(out) as tmp:
            tmp.write_bytes(b"half")
            assert parts(tmp_path) == [tmp.name] and not out.exists()
            raise RuntimeError("interrupted")
    assert not out.exists() and parts(tmp_path) == []
    fileutil.write_bytes_atomic(out, b"whole")
    assert out.read_bytes() == b"whole" and parts(tmp_path) == []


def test_temporary_names_say_who_writes(tmp_path):
    with fileutil.atomic_output(tmp_path / "o.bin") as tmp:
        m = fileutil._TEMP.match(tmp.name)
        assert m and int(m["pid"]) == os.getpid() and m["host"] == fileutil._host()
        assert fileutil.sweep_leftovers(tmp_path) == []  # a live writer's file stays


def test_sweep_removes_only_dead_writers_of_this_host(tmp_path):
    host = fileutil._host()
    dead = tmp_path / f".a.wav.{host}-999999-1.0123abcd.part"     # no such process
    reused = tmp_path / f".b.wav.{host}-{os.getpid()}-1.0123abcd.part"  # our pid, another start time
    other_host = tmp_path / ".c.wav.ffffffff-999999-1.0123abcd.part"
    old_style = tmp_path / ".d.wav.0123abcd.part"
    for p in (dead, reused, other_host, old_style):
        p.write_bytes(b"x")
    removed = fileutil.sweep_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted([dead.name, reused.name])
    assert parts(tmp_path) == sorted([other_host.name, old_style.name])


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(EncodecError, match="does not exist; create it first"):
        fileutil.write_bytes_atomic(tmp_path / "nope" / "o.bin", b"")
