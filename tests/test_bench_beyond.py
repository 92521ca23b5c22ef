"""benchmarks.beyond_bm3d runs end to end on a tiny set and prints its table and bars."""

import pytest
from PIL import Image
from skimage import data

from benchmarks import beyond_bm3d


def test_beyond_bm3d_smoke(tmp_path, capsys):
    pytest.importorskip("bm3d")
    (tmp_path / "Tiny").mkdir()
    Image.fromarray(data.camera()[::8, ::8]).save(tmp_path / "Tiny" / "cam.png")
    assert beyond_bm3d.main(["--data", str(tmp_path), "--sets", "Tiny", "--sigmas", "25", "--methods", "blind"]) == 0
    out = capsys.readouterr().out
    assert "| Tiny | 25 | nlm blind |" in out and "| Tiny | 25 | bm3d |" in out
    assert "speed over the whole run" in out and "Published averages" in out


def test_beyond_bm3d_skips_absent_data(tmp_path, capsys):
    """No Set12 folder (or, on a machine without the bench extra, no bm3d): a message, exit 0, nothing run."""
    import importlib.util

    assert beyond_bm3d.main(["--data", str(tmp_path), "--sets", "Set12", "--sigmas", "25"]) == 0
    out = capsys.readouterr().out
    if importlib.util.find_spec("bm3d") is None:
        assert "the bm3d package is missing" in out and "skipped" in out
    else:
        assert "absent" in out and "nothing was run" in out
