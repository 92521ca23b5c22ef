"""The "Denoise (nlm)" widget driven in a real, headless napari viewer (pytest-qt, napari's
``make_napari_viewer_proxy``).

Needs the ``napari-test`` extra (napari, magicgui, PyQt6, pytest-qt, npe2) and a display:
``.ci/run`` runs this file under ``xvfb-run`` (Qt's ``offscreen`` platform has no OpenGL for the
canvas).  Skipped, with the reason, without them.  Tiny images: the whole file takes seconds once the
kernels are compiled (the main test run compiles them first)."""

import os
import sys

import numpy as np
import pytest

pytest.importorskip("napari", reason="the napari plugin's tests need the napari-test extra")
pytest.importorskip("pytestqt", reason="the napari plugin's tests need pytest-qt (napari-test extra)")
if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("no display: run under xvfb-run (as .ci/run does)", allow_module_level=True)

import nlm  # noqa: E402
import nlm.noise  # noqa: E402
from nlm.napari import _run as R  # noqa: E402
from nlm.napari import _widget as W  # noqa: E402

TIMEOUT = 60_000  # ms; a cold kernel compile, not the run itself


def _noisy(shape, sigma=0.1, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    clean = np.broadcast_to(0.3 + 0.4 * ((xx // 6 + yy // 6) % 2), shape).astype(np.float32)
    return (clean + sigma * rng.standard_normal(shape)).astype(np.float32), clean


@pytest.fixture
def viewer_widget(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    widget = W.denoise_widget()
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def _wait(qtbot, worker):
    """Until the widget has handled the worker's end (set by its ``finished`` handler, connected before the
    start, so a fast worker cannot finish unseen as it could with ``qtbot.waitSignal`` connected after)."""
    qtbot.waitUntil(lambda: getattr(worker, "_nlm_finished", False), timeout=TIMEOUT)


def _run(qtbot, widget, **kwargs):
    """Call the widget like its button (or a script) does; wait for the worker; return it."""
    for name, value in kwargs.items():
        getattr(widget, name).value = value
    worker = widget()
    assert worker is not None and worker is getattr(widget, W.WORKER)
    _wait(qtbot, worker)
    return worker


def test_the_call_returns_at_once_and_the_result_is_a_new_layer(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    noisy, clean = _noisy((48, 56))
    layer = viewer.add_image(noisy, name="cells", scale=(0.5, 0.25), translate=(10.0, -3.0))
    widget.image.value = layer
    # the automatic settings (0) say so
    assert widget.looks.native.text() == "estimated" and widget.looks.value == 0
    assert widget.patch_size.label == "patch size (0 = auto)" and widget.patch_size.value == 0
    assert widget.search_radius.label == "search radius (0 = auto)" and widget.search_radius.value == 0
    widget.patch_size.value, widget.search_radius.value = 5, 4
    worker = widget()
    # the call only starts the worker: the result layer comes later, from the UI thread's event loop
    assert "cells denoised" not in viewer.layers
    _wait(qtbot, worker)
    out = viewer.layers["cells denoised"]
    np.testing.assert_array_equal(out.scale, layer.scale)
    np.testing.assert_array_equal(out.translate, layer.translate)
    model = nlm.estimate_noise(noisy)
    np.testing.assert_array_equal(out.data, nlm.denoise_nl_means(noisy, 5, 4, noise=model))
    meta = out.metadata["nlm"]
    assert meta["method"] == "means" and meta["source"] == "cells" and meta["axes"] == R.PLANES
    assert meta["parameters"] == {"patch_size": 5, "patch_distance": 4}
    assert meta["estimated_noise"] == [repr(model)]
    assert widget._nlm_info.value == f"noise: {model!r}"
    assert widget._nlm_progress.value == widget._nlm_progress.max == 2
    assert not widget._nlm_cancel.enabled
    # a rerun replaces the layer
    _run(qtbot, widget, method="bayes", patch_size=0, search_radius=0)
    assert [lay.name for lay in viewer.layers] == ["cells", "cells denoised"]
    assert viewer.layers["cells denoised"].metadata["nlm"]["method"] == "bayes"


def test_volume_time_lapse_and_rgb(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    vol, _ = _noisy((5, 20, 24), sigma=0.06, seed=1)
    widget.image.value = viewer.add_image(vol, name="vol")
    _run(qtbot, widget, method="bayes", axes=R.AUTO)
    out = viewer.layers["vol denoised"]
    np.testing.assert_array_equal(out.data, nlm.denoise_nl_bayes(vol, noise=nlm.estimate_noise(vol)))
    assert out.metadata["nlm"]["axes"] == R.VOLUME

    _run(qtbot, widget, method="means", axes=R.FRAMES, patch_size=3, search_radius=2)
    out = viewer.layers["vol denoised"]
    assert out.metadata["nlm"]["axes"] == R.FRAMES and len(out.metadata["nlm"]["estimated_noise"]) == 5
    assert widget._nlm_progress.value == 10
    np.testing.assert_array_equal(out.data[2], nlm.denoise_nl_means(vol[2], 3, 2, noise=nlm.estimate_noise(vol[2])))

    _run(qtbot, widget, axes=R.TIME)
    assert viewer.layers["vol denoised"].metadata["nlm"]["parameters"] == {"patch_size": [1, 3, 3],
                                                                          "patch_distance": [2, 2, 2]}

    rgb = (np.clip(_noisy((20, 24, 3), sigma=0.05, seed=2)[0], 0, 1) * 255).astype(np.uint8)
    widget.image.value = viewer.add_image(rgb, name="photo", rgb=True)
    _run(qtbot, widget, axes=R.AUTO)
    out = viewer.layers["photo denoised"]
    assert out.rgb and out.data.shape == rgb.shape and out.data.dtype == np.float32
    assert out.metadata["nlm"]["axes"] == R.RGB


def test_cancel_stops_between_frames(qtbot, viewer_widget, monkeypatch):
    import threading

    viewer, widget = viewer_widget
    stack, _ = _noisy((40, 16, 16), seed=3)
    # the second frame's filter waits until Cancel is pressed: on an idle machine the 40 tiny frames would
    # otherwise all be done before the click
    gate, calls, real = threading.Event(), [], R.denoise_block

    def gated(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            gate.wait(TIMEOUT / 1000)
        return real(*args, **kwargs)

    monkeypatch.setattr(R, "denoise_block", gated)
    widget.image.value = viewer.add_image(stack, name="movie")
    widget.axes.value, widget.patch_size.value, widget.search_radius.value = R.FRAMES, 3, 2
    worker = widget()
    assert widget._nlm_cancel.enabled
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=TIMEOUT)
    widget._nlm_cancel.changed.emit(True)  # the Cancel button
    gate.set()
    _wait(qtbot, worker)
    assert len(calls) == 2  # stopped after the step in progress
    assert worker.abort_requested
    assert "movie denoised" not in viewer.layers
    assert widget._nlm_info.value == "cancelled"
    assert widget._nlm_progress.value < widget._nlm_progress.max


def test_a_new_run_replaces_the_one_in_progress(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    stack, _ = _noisy((40, 16, 16), seed=5)
    widget.image.value = viewer.add_image(stack, name="movie")
    widget.axes.value, widget.patch_size.value, widget.search_radius.value = R.FRAMES, 3, 2
    first = widget()
    second = widget(search_radius=1)
    assert first.abort_requested and getattr(widget, W.WORKER) is second
    _wait(qtbot, first)
    _wait(qtbot, second)
    meta = viewer.layers["movie denoised"].metadata["nlm"]
    assert meta["parameters"] == {"patch_size": 3, "patch_distance": 1}
    assert widget._nlm_progress.value == 80 and not widget._nlm_cancel.enabled


def test_preview_filters_the_slice_on_screen(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    vol, _ = _noisy((4, 24, 28), seed=4)
    layer = viewer.add_image(vol, name="vol", scale=(2.0, 1.0, 1.0), translate=(5.0, 0.0, 0.0))
    widget.image.value = layer
    widget.patch_size.value, widget.search_radius.value = 3, 3
    viewer.dims.set_point(0, 5.0 + 2 * 2.0)  # world z of slice 2
    worker = W._preview(widget)
    _wait(qtbot, worker)
    out = viewer.layers["vol preview"]
    assert out.data.shape == (1, 24, 28)
    assert out.metadata["nlm"]["slice"] == [2]
    np.testing.assert_allclose(out.translate, (9.0, 0.0, 0.0))
    np.testing.assert_array_equal(out.data[0], nlm.denoise_nl_means(vol[2], 3, 3, noise=nlm.estimate_noise(vol[2])))
    assert widget._nlm_info.value.startswith("preview noise: Gaussian")


def test_errors_are_clear(qtbot, viewer_widget):
    viewer, widget = viewer_widget
    widget.image.value = viewer.add_image(_noisy((20, 24))[0], name="flat")
    widget.axes.value = R.VOLUME
    with pytest.raises(ValueError, match="3 spatial axes"):
        widget()
    widget.image.value = viewer.add_image(_noisy((2, 3, 20, 24))[0], name="tzyx")
    widget.axes.value, widget.method.value = R.TIME, "bayes"
    with pytest.raises(ValueError, match="2-D and 3-D blocks"):
        widget()
    bad = _noisy((20, 24))[0]
    bad[0, 0] = np.nan
    widget.image.value = viewer.add_image(bad, name="nan")
    widget.axes.value, widget.method.value = R.AUTO, "means"
    with qtbot.capture_exceptions() as caught:  # napari also shows the worker's error as a notification
        worker = widget()
        _wait(qtbot, worker)
    assert widget._nlm_info.value == "error: image contains NaN or Inf values"
    assert "nan denoised" not in viewer.layers
    assert all(isinstance(exc, ValueError) for _, exc, _ in caught)


def test_the_manifest_contributes_the_widget_and_samples(qtbot, make_napari_viewer_proxy):
    from npe2 import PluginManager

    pm = PluginManager.instance()
    if "nlm" not in pm:
        pm.discover()
    assert "nlm" in pm
    viewer = make_napari_viewer_proxy()
    dock, widget = viewer.window.add_plugin_dock_widget("nlm", "Denoise")
    assert widget.call_button.text == "Denoise"
    viewer.open_sample("nlm", "camera_gaussian")
    assert [lay.name for lay in viewer.layers] == ["camera gaussian noisy", "camera gaussian clean"]
    assert viewer.layers["camera gaussian noisy"] in widget.image.choices
