"""benchmarks.bayes_raw runs end to end on a small image and meets its bar there."""

from PIL import Image
from skimage import data

from benchmarks import bayes_raw


def test_bayes_raw_smoke(tmp_path, capsys):
    Image.fromarray(data.camera()[::6, ::6]).save(tmp_path / "cam.png")
    bayes_raw.main(["--data", str(tmp_path), "--sigmas", "25"])
    out = capsys.readouterr().out
    assert "bar: raw 8/16-bit within 0.05 dB of the float path on every image: met" in out
    row = [line for line in out.splitlines() if line.strip().startswith("25")][0].split()
    assert int(row[1]) == 1 and abs(float(row[2]) - float(row[3])) < 0.05
