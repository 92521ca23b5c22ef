"""benchmarks.bayes_tiled runs end to end on a small mosaic: tiles bit-identical to the in-memory call."""

from PIL import Image
from skimage import data

from benchmarks import bayes_tiled


def test_bayes_tiled_smoke(tmp_path, capsys):
    Image.fromarray(data.camera()[:256, :256]).save(tmp_path / "cam.png")
    Image.fromarray(data.moon()[:256, :256]).save(tmp_path / "moon.png")
    bayes_tiled.main(["--data", str(tmp_path), "--size", "320", "--chunks", "160", "--repeat", "1"])
    out = capsys.readouterr().out
    # three passes (radius 11, then 24) and the NL-Ridge pass at sigma 25
    assert "margins 442 rows / 742 columns" in out and "later passes 24/24" in out
    assert "bar: tiles bit-identical to the in-memory result: met" in out
