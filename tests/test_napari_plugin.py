"""The napari plugin's parts that need no napari: axes plans, settings, the run as steps, preview,
metadata, sample data, the manifest, and that ``import nlm`` / ``nlm.napari`` import no napari or Qt.

The widget itself, in a real viewer, is tested by tests/test_napari.py (napari, a Qt binding and a
display: ``.ci/run`` runs it under Xvfb)."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nlm
import nlm.noise
from nlm.napari import _run as R
from nlm.napari import _sample as S

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "nlm" / "napari" / "napari.yaml"


def _drain(gen):
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        return steps, stop.value


def _noisy(shape, sigma=0.1, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    clean = 0.3 + 0.4 * ((xx // 6 + yy // 6) % 2)
    clean = np.broadcast_to(clean, shape).astype(dtype)
    return (clean + sigma * rng.standard_normal(shape)).astype(dtype), clean


# ------------------------------------------------------------------------------------------------ plans
@pytest.mark.parametrize("shape, rgb, axes, expected", [
    ((20, 30), False, R.AUTO, (R.PLANES, 2, False, False, ())),
    ((4, 20, 30), False, R.AUTO, (R.VOLUME, 3, False, False, ())),
    ((3, 4, 20, 30), False, R.AUTO, (R.FRAMES, 3, False, False, (3,))),
    ((20, 30, 3), True, R.AUTO, (R.RGB, 2, True, False, ())),
    ((5, 20, 30, 3), True, R.AUTO, (R.RGB, 2, True, False, (5,))),
    ((4, 20, 30), False, R.PLANES, (R.PLANES, 2, False, False, (4,))),
    ((4, 20, 30), False, R.FRAMES, (R.FRAMES, 2, False, False, (4,))),
    ((4, 20, 30), False, R.TIME, (R.TIME, 3, False, True, ())),
    ((3, 4, 20, 30), False, R.TIME, (R.TIME, 4, False, True, ())),
    ((6, 4, 20, 30), False, R.VOLUME, (R.VOLUME, 3, False, False, (6,))),
    ((20, 30, 3), False, R.RGB, (R.RGB, 2, True, False, ())),
])
def test_plan_resolves_the_axes(shape, rgb, axes, expected):
    p = R.plan(shape, rgb, axes)
    assert (p.axes, p.block_ndim, p.rgb, p.time, p.lead_shape) == expected
    assert p.n_blocks == int(np.prod(expected[-1], dtype=int))


@pytest.mark.parametrize("shape, rgb, axes, match", [
    ((20, 30), False, R.VOLUME, "3 spatial axes"),
    ((20, 30), False, R.FRAMES, "time axis"),
    ((20, 30), False, R.TIME, "time axis"),
    ((20, 30, 5), False, R.RGB, "3 or 4 colour channels"),
    ((30,), False, R.AUTO, "at least 2 spatial axes"),
    ((2, 2, 3, 20, 30), False, R.TIME, "2-D or 3-D"),
    ((20, 30), False, "xyz", "axes must be one of"),
])
def test_plan_refuses_what_does_not_fit(shape, rgb, axes, match):
    with pytest.raises(ValueError, match=match):
        R.plan(shape, rgb, axes)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "bm3d"}, "method must be one of"),
    ({"noise": "salt"}, "noise must be one of"),
    ({"looks": -1.0}, "looks must be >= 0"),
    ({"looks": 4.0}, "looks is for the gamma"),
    ({"patch_size": 4}, "patch_size must be odd"),
    ({"search_radius": -1}, "search_radius must be >= 0"),
])
def test_settings_refuse_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        R.Settings(**kwargs)


def test_geometry_defaults_and_overrides():
    g = nlm.noise.Gaussian(0.1)
    assert R.geometry(R.Settings(), 2, False, g) == {"patch_size": 7, "patch_distance": 11}
    assert R.geometry(R.Settings(noise="speckle"), 2, False, nlm.noise.Speckle(0.04)) == {
        "patch_size": 5, "patch_distance": 11}
    assert R.geometry(R.Settings(), 3, False, g) == {"patch_size": 5, "patch_distance": 3}
    assert R.geometry(R.Settings(patch_size=3, search_radius=4), 3, True, g) == {
        "patch_size": (1, 3, 3), "patch_distance": (2, 4, 4)}
    assert R.geometry(R.Settings(), 4, True, g) == {"patch_size": (1, 5, 5, 5), "patch_distance": (1, 3, 3, 3)}
    assert R.geometry(R.Settings(method="bayes"), 2, False, g) == {}
    assert R.geometry(R.Settings(method="bayes", patch_size=5, search_radius=6), 3, False, g) == {
        "patch_size": 5, "search_radius": 6}
    assert R.geometry(R.Settings(method="bayes"), 3, True, g) == {"patch_size": (1, 5, 5),
                                                                   "search_radius": (1, 6, 6)}
    with pytest.raises(ValueError, match="2-D frames"):
        R.geometry(R.Settings(method="bayes"), 4, True, g)


def test_work_dtype():
    assert R.work_dtype(np.uint8) == np.float32
    assert R.work_dtype(np.uint16) == np.float32
    assert R.work_dtype(np.float16) == np.float32
    assert R.work_dtype(np.float32) == np.float32
    assert R.work_dtype(np.float64) == np.float64


# ------------------------------------------------------------------------------------------------ run
def test_run_is_the_library_call_with_the_estimated_model():
    noisy, _ = _noisy((40, 48))
    steps, out = _drain(R.run(noisy, R.Settings(), R.plan(noisy.shape, False, R.AUTO)))
    assert [(s.done, s.total) for s in steps] == [(1, 2), (2, 2)]
    model = nlm.estimate_noise(noisy)
    assert [repr(m) for m in out["models"]] == [repr(model)]
    assert "Gaussian" in steps[0].message
    np.testing.assert_array_equal(out["image"], nlm.denoise_nl_means(noisy, 7, 11, noise=model))
    assert out["image"].dtype == np.float32


def test_run_frame_by_frame_steps_and_equals_each_frame():
    noisy, _ = _noisy((3, 24, 32), seed=1)
    p = R.plan(noisy.shape, False, R.FRAMES)
    steps, out = _drain(R.run(noisy, R.Settings(patch_size=3, search_radius=2), p))
    assert [s.done for s in steps] == list(range(1, 7)) and {s.total for s in steps} == {6}
    assert "block 2 of 3" in steps[2].message
    assert len(out["models"]) == 3
    for t in range(3):
        want = nlm.denoise_nl_means(noisy[t], 3, 2, noise=nlm.estimate_noise(noisy[t]))
        np.testing.assert_array_equal(out["image"][t], want)


def test_run_time_as_an_axis_uses_per_axis_geometry():
    noisy, _ = _noisy((4, 20, 24), seed=2)
    _, out = _drain(R.run(noisy, R.Settings(patch_size=3, search_radius=2), R.plan(noisy.shape, False, R.TIME)))
    want = nlm.denoise_nl_means(noisy, (1, 3, 3), (2, 2, 2), noise=nlm.estimate_noise(noisy))
    np.testing.assert_array_equal(out["image"], want)
    assert out["parameters"] == {"patch_size": (1, 3, 3), "patch_distance": (2, 2, 2)}


def test_run_uint8_rgb_keeps_its_units_and_colour():
    noisy, _ = _noisy((24, 28, 3), sigma=0.05, seed=3)
    u8 = np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)
    _, out = _drain(R.run(u8, R.Settings(patch_size=3, search_radius=3), R.plan(u8.shape, True, R.AUTO)))
    img = out["image"]
    assert img.dtype == np.float32 and img.shape == u8.shape
    assert img.min() >= u8.min() and img.max() <= u8.max() and img.max() > 1  # raw units, not [0, 1]


def test_run_bayes_volume_and_given_looks():
    noisy, _ = _noisy((6, 20, 20), sigma=0.05, seed=4)
    _, out = _drain(R.run(noisy, R.Settings(method="bayes"), R.plan(noisy.shape, False, R.VOLUME)))
    want = nlm.denoise_nl_bayes(noisy, noise=nlm.estimate_noise(noisy))
    np.testing.assert_array_equal(out["image"], want)
    sar = np.random.default_rng(5).gamma(4.0, 0.25, (24, 24)).astype(np.float32)
    _, out = _drain(R.run(sar, R.Settings(noise="gamma", looks=4.0), R.plan(sar.shape, False, R.AUTO)))
    assert [repr(m) for m in out["models"]] == [repr(nlm.noise.Gamma(4.0))]


def test_run_noise_free_input_comes_back():
    flat = np.full((16, 16), 0.5, dtype=np.float32)
    _, out = _drain(R.run(flat, R.Settings(), R.plan(flat.shape, False, R.AUTO)))
    np.testing.assert_allclose(out["image"], flat, atol=1e-6)


def test_run_reports_library_errors():
    bad = np.full((16, 16), 0.5, dtype=np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError):
        _drain(R.run(bad, R.Settings(), R.plan(bad.shape, False, R.AUTO)))


def test_preview_is_the_2d_filter_of_the_slice():
    noisy, _ = _noisy((3, 24, 24), seed=6)
    out, model, params = R.preview(noisy[1], R.Settings(patch_size=5, search_radius=4, axes=R.VOLUME), False)
    np.testing.assert_array_equal(out, nlm.denoise_nl_means(noisy[1], 5, 4, noise=model))
    assert params == {"patch_size": 5, "patch_distance": 4}


def test_metadata_records_method_parameters_and_noise():
    p = R.plan((3, 8, 8), False, R.FRAMES)
    meta = R.metadata(R.Settings(method="bayes", patch_size=5), p, [nlm.noise.Gaussian(0.1)] * 3,
                      {"patch_size": (1, 5, 5)}, "cells")
    assert meta["method"] == "bayes" and meta["axes"] == R.FRAMES and meta["source"] == "cells"
    assert meta["parameters"] == {"patch_size": [1, 5, 5]}
    assert meta["estimated_noise"] == ["Gaussian(sigma=0.1)"] * 3
    assert meta["nlm_version"] == nlm.__version__


# ------------------------------------------------------------------------------------------------ samples
@pytest.mark.parametrize("fn, name", [(S.camera_speckle, "camera_speckle04.png"),
                                      (S.astronaut_speckle, "astronaut256_speckle04.png")])
def test_samples_are_the_projects_noisy_images(fn, name):
    from nlm.io import read_image

    layers = fn()
    assert [kind for *_, kind in layers] == ["image", "image"]
    assert layers[1][1]["visible"] is False
    path = ROOT / "samples" / name
    if not path.exists():
        pytest.skip("samples/ is not in this checkout")
    np.testing.assert_array_equal(layers[0][0], read_image(path).data)


def test_gaussian_samples_are_seeded_at_their_levels():
    for fn, level in ((S.camera_gaussian, 0.1), (S.blobs_volume, 0.06)):
        (noisy, _, _), (clean, _, _) = fn()
        assert noisy.dtype == np.float32 and noisy.shape == clean.shape
        assert abs(float(np.std(noisy - clean)) - level) < 0.002
        np.testing.assert_array_equal(noisy, fn()[0][0])
    assert S.blobs_volume()[0][0].ndim == 3


# ------------------------------------------------------------------------------------------------ packaging
def test_manifest_names_functions_that_exist():
    yaml = pytest.importorskip("yaml")
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["name"] == "nlm"
    commands = {c["id"]: c["python_name"] for c in manifest["contributions"]["commands"]}
    assert [w["display_name"] for w in manifest["contributions"]["widgets"]] == ["Denoise"]
    for sample in manifest["contributions"]["sample_data"]:
        module, name = commands[sample["command"]].split(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name))
    module, name = commands[manifest["contributions"]["widgets"][0]["command"]].split(":")
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())  # no napari needed to check it
    assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_manifest_is_package_data_with_an_entry_point():
    cfg = (ROOT / "setup.cfg").read_text()
    assert "nlm.napari = napari.yaml" in cfg
    assert "napari.manifest =\n    nlm = nlm.napari:napari.yaml" in cfg


def test_importing_nlm_and_its_plugin_imports_no_napari_or_qt():
    code = ("import sys, nlm, nlm.napari, nlm.napari._run, nlm.napari._sample; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'magicgui', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'vispy')]; "
            "print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
