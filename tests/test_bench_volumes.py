"""benchmarks.volumes: a smoke run of every target (BM4D and the slow out-of-core run left out)."""

import numpy as np

from benchmarks import bayes3d, volumes


def test_smoke(monkeypatch, capsys):
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in (10, 20, 18)], indexing="ij")
    vol = np.clip(0.5 + 0.3 * np.sin(3 * x + y) * np.cos(z), 0, 1)
    monkeypatch.setattr(bayes3d, "load", lambda name: vol)
    monkeypatch.setattr(volumes.rician, "_volume", lambda: 1000 * np.moveaxis(vol, 0, 2))
    monkeypatch.setattr(volumes, "peak_memory", lambda shape: 4.0)  # no second process in the unit tests
    assert volumes.main(["--quick", "--no-bm4d"]) == 0
    out = capsys.readouterr().out
    assert "gaussian 5%" in out and "vs 3-D NLM" in out and "BM4D not installed" in out
    try:
        import dipy  # noqa: F401 - the Rician anchor, in the bench extra
    except ImportError:
        assert "dipy not installed" in out
    else:
        assert "rician 10%" in out
    assert "noise map ramp" in out and "memory" in out
    lines = [line for line in out.splitlines() if "(bar " in line]
    assert lines and all(line.endswith(("met", "NOT met")) or "not judged" in line for line in lines)
    assert "targets met" in out.splitlines()[-1]


def test_out_of_core_on_a_small_volume(monkeypatch, capsys):
    """The out-of-core check end to end on 24^3 (a budget it needs no tiles for: the plumbing only)."""
    assert volumes.out_of_core(24) == [True]
    assert "equal to in memory: True" in capsys.readouterr().out
