"""Smoke tests of the PSNR benchmark harness (benchmarks/psnr.py)."""

import csv
import math
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

psnr_bench = pytest.importorskip("benchmarks.psnr")


@pytest.fixture
def image_dir(tmp_path):
    import imageio.v3 as iio
    from skimage import data

    d = tmp_path / "imgs"
    d.mkdir()
    iio.imwrite(d / "tiny.png", data.camera()[200:248, 200:248])  # 48x48 uint8
    (d / "notes.txt").write_text("not an image")
    return d


def _read(out):
    md = (out / "psnr.md").read_text()
    with open(out / "psnr.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames
        rows = list(reader)
    return md, fields, rows


def _mean_table(md):
    """Rows of the first markdown table (the mean PSNR table)."""
    lines = md.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("| method"))
    rows = []
    for l in lines[start + 2 :]:
        if not l.startswith("|"):
            break
        rows.append([c.strip() for c in l.strip("|").split("|")])
    return lines[start], rows


def test_quick_run_produces_table_csv_and_figures(image_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = psnr_bench.main(["--quick", "--images", str(image_dir), "--out", str(out)])
    assert rc == 0
    md, fields, rows = _read(out)
    assert tuple(fields) == psnr_bench.CSV_FIELDS

    ran = [
        m.key
        for m in psnr_bench.METHODS
        if all(psnr_bench._available(r) is None for r in m.requires) and "speckle" in m.models
    ]
    # one level (the middle default), one image, the noisy row + every method
    assert {r["image"] for r in rows} == {"tiny"}
    assert {float(r["level"]) for r in rows} == {0.04}
    assert [r["method"] for r in rows] == ["noisy"] + ran
    noisy = float(rows[0]["psnr"])
    for r in rows:
        assert r["model"] == "speckle"
        assert math.isfinite(float(r["psnr"])) and 0 < float(r["psnr"]) < 80
        assert -1 <= float(r["ssim"]) <= 1
        assert float(r["seconds"]) >= 0
        if r["method"] != "noisy":
            assert int(r["evals"]) >= 1
    by = {r["method"]: float(r["psnr"]) for r in rows}
    assert by["nlm-blind"] > noisy + 1  # the blind speckle mode denoises
    if "skimage-oracle" in by:
        # the oracle row is the best of its grid, so it beats h = 0.8 sigma
        assert by["skimage-oracle"] >= by["skimage-08"] - 1e-9

    header, table = _mean_table(md)
    assert "var=0.04" in header and "Δ" in header
    labels = [row[0] for row in table]
    assert labels[0] == "noisy input"
    assert len(table) == len(ran) + 1
    for key in ran:
        assert any(f"`{key}`" in lab for lab in labels)
    for row in table:
        float(row[1])  # well-formed numbers
    assert "## Wall time" in md and "## Per image" in md
    assert "| tiny |" in md
    if psnr_bench._available("matplotlib") is None:
        assert (out / "psnr_vs_level.png").stat().st_size > 1000
        assert (out / "crops.png").stat().st_size > 1000
    assert "# PSNR benchmark" in capsys.readouterr().out


def test_missing_packages_are_skipped_cleanly(image_dir, tmp_path, monkeypatch):
    # simulate an install without the bench extra
    for mod in ("cv2", "bm3d", "matplotlib"):
        monkeypatch.setitem(sys.modules, mod, None)
    out = tmp_path / "out"
    rc = psnr_bench.main(
        ["--quick", "--images", str(image_dir), "--out", str(out), "--model", "gamma", "--no-progress"]
    )
    assert rc == 0
    md, _, rows = _read(out)
    methods = {r["method"] for r in rows}
    assert "opencv-oracle" not in methods and "bm3d-oracle" not in methods
    assert {"noisy", "nlm-blind", "nlm-speckle-oracle", "nlm-oracle"} <= methods
    assert {float(r["level"]) for r in rows} == {4.0}  # gamma: looks (1, 4, 16: the middle one)
    assert "`opencv-oracle` skipped: `cv2` is not installed" in md
    assert "`bm3d-oracle` skipped: `bm3d` is not installed" in md
    assert "figures skipped" in md
    assert not (out / "psnr_vs_level.png").exists()


def test_gaussian_model_and_method_subset(image_dir, tmp_path):
    out = tmp_path / "out"
    psnr_bench.main(
        [
            "--quick",
            "--images", str(image_dir),
            "--out", str(out),
            "--model", "gaussian",
            "--levels", "0.0025",
            "--methods", "nlm-blind,nlm-speckle-oracle,nlm-oracle",
            "--no-figure",
        ]
    )
    md, _, rows = _read(out)
    assert [r["method"] for r in rows] == ["noisy", "nlm-blind", "nlm-oracle"]
    assert "not defined for gaussian noise" in md
    # the anchor was not run: no differences, said so
    assert "was not run" in md


@pytest.mark.parametrize(
    "argv, word",
    [
        (["--methods", "foo"], "--methods"),
        (["--levels", "-1"], "--levels"),
        (["--levels", "a,b"], "--levels"),
        (["--model", "poisson"], "--model"),
        (["--images", "no_such_image_name"], "--images"),
    ],
)
def test_bad_arguments_exit_2(argv, word, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        psnr_bench.main(argv + ["--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert word in capsys.readouterr().err


def test_hill_climb_finds_grid_maximum():
    grid = [2.0 ** (k / 4) for k in range(-4, 7)]
    for target in (0.55, 1.0, 1.9, 5.0):
        best, cache = psnr_bench.hill_climb(lambda f: (-abs(np.log(f / target)), None), grid)
        assert grid[best] == min(grid, key=lambda f: abs(np.log(f / target)))
        assert len(cache) <= len(grid)
    best, cache = psnr_bench.hill_climb(lambda f: (-abs(f - 1.0), None), grid)
    assert grid[best] == 1.0 and len(cache) == 3


def test_load_images_builtin_quick():
    imgs = psnr_bench.load_images(None, quick=True)
    assert list(imgs) == list(psnr_bench.QUICK_BUILTIN)
    for v in imgs.values():
        assert v.shape == (64, 64) and v.dtype == np.float64
        assert 0 <= v.min() and v.max() <= 1
    full = psnr_bench.load_images("astronaut")
    assert full["astronaut"].ndim == 2  # colour converted to grey
