"""Smoke test of benchmarks/porting_h.py (the README's porting note on h)."""

import pytest

from benchmarks.porting_h import conversion, main


def test_conversion_factor():
    assert conversion(7, 2) == pytest.approx(7 / 6)
    assert conversion(5, 2) == pytest.approx(1.25)
    assert conversion(7, 3) == pytest.approx((7 / 6) ** 1.5)


def test_smoke(capsys):
    main(["--sigmas", "0.1", "--factors", "0.8"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 0.1 |")]
    assert len(rows) == 1
    values = [float(v) for v in rows[0].strip("| ").split(" | ")[2:]]
    noisy, sk, same, conv, close_same, close_conv = values
    assert sk > noisy + 5 and abs(conv - sk) < 0.5 and close_conv > close_same
