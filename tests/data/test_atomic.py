import pytest

from monai_em.data.atomic import write_atomically


def _half_then_fail(tmp):
    tmp.write_text("half")
    raise OSError("disk full")


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    (tmp_path / "out.txt").write_text("old")
    with pytest.raises(OSError, match="disk full"):
        write_atomically(tmp_path / "out.txt", _half_then_fail)
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"] and (tmp_path / "out.txt").read_text() == "old"


@pytest.mark.parametrize("fsync", [False, True])
def test_write_lands_under_the_final_name_only(tmp_path, fsync):
    path = write_atomically(tmp_path / "a.json", lambda tmp: tmp.write_text("{}"), fsync=fsync)
    assert path == tmp_path / "a.json" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert path.read_text() == "{}"


def test_leftovers_of_killed_writers_are_found_by_the_writers_own_temp_name(tmp_path, monkeypatch):
    """Another process (pid 4242) killed mid-write leaves its temp file; remove_leftovers deletes exactly
    the temp files of that path, whatever the pid, and nothing of another path or a final file."""
    import os

    from monai_em.data.atomic import remove_leftovers

    target = tmp_path / "z0-8[1].h5"  # glob characters in the name are taken literally
    left = []
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    with pytest.raises(OSError, match="disk full"):
        write_atomically(target, lambda tmp: (left.append(tmp.name), _half_then_fail(tmp)))
    monkeypatch.undo()
    (tmp_path / left[0]).write_text("half")  # what a SIGKILL (no clean-up) leaves behind
    write_atomically(tmp_path / "other.h5", lambda tmp: tmp.write_text("done"))
    (tmp_path / ".other.77.tmp.h5").write_text("half")
    assert [p.name for p in remove_leftovers(target)] == left == [".z0-8[1].4242.tmp.h5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.77.tmp.h5", "other.h5"]
