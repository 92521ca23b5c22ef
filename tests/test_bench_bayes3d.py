"""benchmarks.bayes3d: skips absent volumes with a message; runs end to end on a small stand-in volume."""

import numpy as np

from benchmarks import bayes3d


def test_absent_volumes_are_skipped(monkeypatch, capsys):
    monkeypatch.setitem(bayes3d.VOLUMES, "aniso_vox", ("nlm_no_such_package", "x.nii", None))
    assert bayes3d.load("aniso_vox") is None
    assert "skipping aniso_vox" in capsys.readouterr().err
    monkeypatch.setattr(bayes3d, "load", lambda name: None)
    assert bayes3d.main(["--sigmas", "6"]) == 0
    assert "no volume available" in capsys.readouterr().out


def test_smoke_on_a_small_volume(monkeypatch, capsys):
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in (8, 20, 18)], indexing="ij")
    vol = np.clip(0.5 + 0.3 * np.sin(3 * x + y) * np.cos(z), 0, 1)
    monkeypatch.setattr(bayes3d, "load", lambda name: vol)
    assert bayes3d.main(["--sigmas", "6", "--volumes", "aniso_vox", "--no-bm4d"]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("aniso_vox")][0].split()
    noisy, bayes, nlm = float(row[4]), float(row[9]), float(row[13])
    assert bayes > noisy + 5 and nlm > noisy + 5
    assert "mean over the held-out volumes" in out
