"""The "Denoise (nlm)" dock widget: a magicgui ``FunctionGui`` made by :func:`denoise_widget`.

Calling the widget (its *Denoise* button, or ``widget()`` from a script)
checks the settings, makes a napari ``thread_worker`` over
:func:`nlm.napari._run.run` and starts it: the call returns the worker at
once and the viewer stays responsive.  The worker's steps move the widget's
progress bar; *Cancel* quits it between steps (the compiled filter call in
progress finishes first).  Its result becomes the layer ``"<input>
denoised"`` (replaced on a rerun) with the input's scale, translate, rotation
and shear, and ``metadata["nlm"]`` holding the method, the parameters and the
estimated noise model(s), which the widget's label shows too.  *Preview on
this slice* filters the 2-D slice on screen into ``"<input> preview"``, placed
on that slice.

This module imports napari and magicgui; nothing in ``nlm`` imports it
(napari loads it through ``napari.yaml``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import napari
import numpy as np
from magicgui import magic_factory
from magicgui.widgets import Label, ProgressBar, PushButton
from napari.qt.threading import thread_worker

from nlm.napari import _run

if TYPE_CHECKING:
    from magicgui.widgets import FunctionGui

WORKER = "_nlm_worker"


def _viewer(widget: FunctionGui) -> Any:
    """The viewer the widget is docked in, else napari's current viewer (None without one)."""
    try:
        from napari.utils._magicgui import find_viewer_ancestor
    except ImportError:  # pragma: no cover - napari moved its helper
        return napari.current_viewer()
    return find_viewer_ancestor(widget.native)


def _settings(widget: FunctionGui) -> _run.Settings:
    return _run.Settings(
        method=widget.method.value, noise=widget.noise.value, looks=float(widget.looks.value),
        patch_size=int(widget.patch_size.value), search_radius=int(widget.search_radius.value),
        axes=widget.axes.value,
    )


def _layer_kwargs(layer: Any) -> dict[str, Any]:
    return {"scale": layer.scale, "translate": layer.translate, "rotate": layer.rotate, "shear": layer.shear}


def _put(viewer: Any, name: str, data: np.ndarray, source: Any, metadata: dict[str, Any],
         **kwargs: Any) -> Any:
    """Add the image layer ``name``, or replace the data, placement and metadata of the one there."""
    place = {**_layer_kwargs(source), **kwargs}
    if name in viewer.layers:
        layer = viewer.layers[name]
        if layer.data.shape == data.shape and getattr(layer, "rgb", False) == source.rgb:
            layer.data = data
            for key, value in place.items():
                setattr(layer, key, value)
            layer.metadata = {**layer.metadata, "nlm": metadata}
            return layer
        viewer.layers.remove(name)
    extra = {} if source.rgb else {"colormap": source.colormap.name}
    return viewer.add_image(data, name=name, rgb=source.rgb, contrast_limits=source.contrast_limits,
                            metadata={"nlm": metadata}, **place, **extra)


def _describe(models: list[Any]) -> str:
    if not models:
        return "noise: -"
    if len(models) == 1:
        return f"noise: {models[0]!r}"
    return f"noise ({len(models)} blocks): {models[0]!r} ... {models[-1]!r}"


def _start_run(widget: FunctionGui, worker: Any) -> None:
    """Connect a run's worker to the widget (progress, cancel, result) and start it."""
    if worker is None:
        return
    old = getattr(widget, WORKER, None)
    if old is not None and not getattr(old, "_nlm_finished", False):
        old.quit()  # also before it runs: a pool thread may not have picked it up yet (is_running False)
    setattr(widget, WORKER, worker)
    layer, settings, plan = worker._nlm_job
    bar, cancel, info = widget._nlm_progress, widget._nlm_cancel, widget._nlm_info
    bar.max, bar.value = 2 * plan.n_blocks, 0
    bar.label = "running"
    info.value = "estimating the noise..."
    cancel.enabled = True

    def current() -> bool:  # a run replaced by a newer one (quit) no longer drives the widget
        return getattr(widget, WORKER, None) is worker

    def on_yield(p: _run.Progress) -> None:
        if current():
            bar.max, bar.value = p.total, p.done
            info.value = p.message

    def on_return(out: dict[str, Any]) -> None:
        viewer = _viewer(widget)
        meta = _run.metadata(settings, plan, out["models"], out["parameters"], layer.name)
        if viewer is not None:
            _put(viewer, f"{layer.name} denoised", out["image"], layer, meta)
        info.value = _describe(out["models"])
        widget._nlm_last = meta

    def on_error(exc: Exception) -> None:
        if current():
            info.value = f"error: {exc}"

    def on_abort(*_: Any) -> None:
        if current():
            info.value = "cancelled"

    def on_finish() -> None:
        worker._nlm_finished = True  # set in the UI thread, after the result (or the error) is shown
        if current():
            cancel.enabled = False
            bar.label = ""
            setattr(widget, WORKER, None)

    worker.yielded.connect(on_yield)
    worker.returned.connect(on_return)
    worker.errored.connect(on_error)
    worker.aborted.connect(on_abort)
    worker.finished.connect(on_finish)
    worker.start()


def _cancel(widget: FunctionGui) -> None:
    worker = getattr(widget, WORKER, None)
    if worker is not None and not getattr(worker, "_nlm_finished", False):
        widget._nlm_info.value = "cancelling (after the step in progress)..."
        worker.quit()


def _current_slice(layer: Any, viewer: Any) -> tuple[np.ndarray, tuple[int, ...]]:
    """The 2-D slice (y, x, and colour if RGB) of ``layer`` at the viewer's position, and its leading index."""
    data = layer.data
    lead = data.ndim - 2 - (1 if layer.rgb else 0)
    point = layer.world_to_data(viewer.dims.point) if viewer is not None else np.zeros(layer.ndim)
    point = np.asarray(point, dtype=float)[-layer.ndim:]
    idx = tuple(int(np.clip(np.rint(point[k]), 0, data.shape[k] - 1)) for k in range(lead))
    return np.asarray(data[idx]), idx


def _preview(widget: FunctionGui) -> Any:
    """Filter the slice on screen in a worker; returns the started worker (None without an input layer)."""
    layer = widget.image.value
    if layer is None:
        widget._nlm_info.value = "choose an Image layer"
        return None
    settings = _settings(widget)
    viewer = _viewer(widget)
    slice_, idx = _current_slice(layer, viewer)

    @thread_worker(start_thread=False)
    def work():
        return _run.preview(slice_, settings, layer.rgb)

    def on_return(out: tuple[np.ndarray, Any, dict[str, Any]]) -> None:
        image, model, params = out
        # a 2-D result placed on its slice: singleton leading axes at the slice's position
        data = image[(None,) * len(idx)]
        scale = np.asarray(layer.scale, dtype=float)
        translate = np.asarray(layer.translate, dtype=float).copy()
        translate[: len(idx)] += np.asarray(idx) * scale[: len(idx)]
        plan = _run.plan(image.shape, layer.rgb, _run.RGB if layer.rgb else _run.PLANES)
        meta = {**_run.metadata(settings, plan, [model], params, layer.name), "slice": list(idx)}
        if viewer is not None:
            _put(viewer, f"{layer.name} preview", data, layer, meta, translate=translate)
        widget._nlm_info.value = "preview " + _describe([model])

    def on_finish() -> None:
        worker._nlm_finished = True

    worker = work()
    worker.returned.connect(on_return)
    worker.errored.connect(lambda exc: setattr(widget._nlm_info, "value", f"error: {exc}"))
    worker.finished.connect(on_finish)
    widget._nlm_preview_worker = worker
    worker.start()
    return worker


def _init(widget: FunctionGui) -> None:
    """Add the preview and cancel buttons, the progress bar and the noise label; wire the run."""
    preview = PushButton(text="Preview on this slice", gui_only=True)
    cancel = PushButton(text="Cancel", gui_only=True, enabled=False)
    bar = ProgressBar(value=0, min=0, max=1, label="", gui_only=True)
    info = Label(value="noise: -", gui_only=True)
    widget.extend([preview, bar, cancel, info])
    # looks 0 means "estimate it": the spin box says so rather than showing 0.00 (Qt's QDoubleSpinBox shows
    # the special text at its minimum; the integer boxes, superqt's, do not, so their labels say "0 = auto")
    native = getattr(widget.looks, "native", None)
    if hasattr(native, "setSpecialValueText"):
        native.setSpecialValueText("estimated")
    widget._nlm_preview, widget._nlm_cancel, widget._nlm_progress, widget._nlm_info = preview, cancel, bar, info
    preview.changed.connect(lambda *_: _preview(widget))
    cancel.changed.connect(lambda *_: _cancel(widget))
    widget.called.connect(lambda worker: _start_run(widget, worker))


@magic_factory(
    widget_init=_init,
    call_button="Denoise",
    method={"choices": _run.METHODS, "tooltip": "means: non-local means (fast); bayes: NL-Bayes (cleaner)"},
    noise={"choices": _run.NOISES, "tooltip": "the noise model, estimated from the layer (auto: chosen too)"},
    looks={"min": 0.0, "max": 10000.0, "step": 0.5, "tooltip": "gamma (SAR) only: number of looks; 0: estimated"},
    patch_size={"min": 0, "max": 31, "step": 1, "label": "patch size (0 = auto)",
                "tooltip": "odd patch side; 0: automatic"},
    search_radius={"min": 0, "max": 64, "step": 1, "label": "search radius (0 = auto)",
                   "tooltip": "search window radius; 0: automatic"},
    axes={"choices": _run.AXES, "tooltip": "how the layer's axes are treated (auto: from its shape)"},
)
def denoise_widget(
    image: napari.layers.Image,
    method: str = "means",
    noise: str = "auto",
    looks: float = 0.0,
    patch_size: int = 0,
    search_radius: int = 0,
    axes: str = _run.AUTO,
) -> Any:
    """Denoise ``image`` into ``"<image> denoised"`` off the UI thread; returns the started worker.

    Raises
    ------
    ValueError
        No layer, a multiscale layer, settings that do not fit the data (see
        :func:`nlm.napari._run.plan` and :class:`nlm.napari._run.Settings`).
    """
    if image is None:
        raise ValueError("choose an Image layer to denoise")
    if getattr(image, "multiscale", False):
        raise ValueError(f"layer {image.name!r} is multiscale: not supported (denoise its full-resolution level)")
    settings = _run.Settings(method=method, noise=noise, looks=float(looks), patch_size=int(patch_size),
                             search_radius=int(search_radius), axes=axes)
    plan = _run.plan(image.data.shape, bool(image.rgb), axes)
    if settings.method == "bayes" and plan.block_ndim > 3:
        raise ValueError(f"method 'bayes' takes 2-D and 3-D blocks, axes={plan.axes!r} gives {plan.block_ndim}-D")
    worker = thread_worker(_run.run, start_thread=False)(image.data, settings, plan)
    worker._nlm_job = (image, settings, plan)
    return worker
