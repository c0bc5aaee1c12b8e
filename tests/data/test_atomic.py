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
