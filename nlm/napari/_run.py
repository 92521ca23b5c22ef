"""The napari plugin's computation, without napari: axes, parameters, the run as steps.

The widget (:mod:`nlm.napari._widget`) collects :class:`Settings`, resolves
how the layer's axes are treated (:func:`plan`) and runs :func:`run` in a
napari ``thread_worker``: :func:`run` is a generator that yields a
:class:`Progress` after every step, so the worker reports progress and can be
cancelled between steps (a step, one compiled filter call, is not
interrupted).  :func:`preview` filters one 2-D slice.  Everything here is
plain NumPy and the public library (``nlm.denoise_nl_means``,
``nlm.denoise_nl_bayes``, ``nlm.estimate_noise``), so it is tested without
napari.

Units: integer data are denoised as float32 in their own units (no scaling to
[0, 1]), so the result keeps the input's contrast limits; float32 (and
float16) data give float32, float64 gives float64.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("means", "bayes")
NOISES = ("auto", "gaussian", "poisson", "speckle", "gamma", "rician")

AUTO = "auto"
PLANES = "2-D image (each plane)"
VOLUME = "3-D volume"
FRAMES = "time-lapse: each frame"
TIME = "time-lapse: time as an axis"
RGB = "RGB"
AXES = (AUTO, PLANES, VOLUME, FRAMES, TIME, RGB)

#: non-local means defaults where the library's (7x7x7 patches, radius 11) would be slow: volumes
VOLUME_MEANS = (5, 3)
#: the temporal radius of non-local means with time as an axis (2-D frames; 3-D frames: 1)
TIME_RADIUS = {2: 2, 3: 1}
#: NL-Bayes with time as an axis (T x Y x X): patches within a frame, one frame either side
TIME_BAYES = ((1, 5, 5), (1, 6, 6))


@dataclass(frozen=True)
class Settings:
    """What the widget asks; 0 means automatic.

    Attributes
    ----------
    method : {"means", "bayes"}
        ``nlm.denoise_nl_means`` or ``nlm.denoise_nl_bayes``.
    noise : {"auto", "gaussian", "poisson", "speckle", "gamma", "rician"}
        The noise model, estimated by ``nlm.estimate_noise`` (``"auto"``: the model is chosen too).
    looks : float >= 0
        Gamma only: the known number of looks; 0: estimated.
    patch_size : int, 0 or odd >= 1
        Patch side (spatial axes; 1 along time); 0: automatic.
    search_radius : int >= 0
        Search window radius (spatial axes); 0: automatic.
    axes : one of :data:`AXES`
        How the layer's axes are treated.
    """

    method: str = "means"
    noise: str = "auto"
    looks: float = 0.0
    patch_size: int = 0
    search_radius: int = 0
    axes: str = AUTO

    def __post_init__(self) -> None:
        for name, allowed in (("method", METHODS), ("noise", NOISES), ("axes", AXES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if not np.isfinite(self.looks) or self.looks < 0:
            raise ValueError(f"looks must be >= 0 (0: estimated), got {self.looks!r}")
        if self.looks and self.noise != "gamma":
            raise ValueError(f"looks is for the gamma noise model, not {self.noise!r}: set it to 0")
        if self.patch_size < 0 or (self.patch_size and self.patch_size % 2 == 0):
            raise ValueError(f"patch_size must be odd (or 0: automatic), got {self.patch_size}")
        if self.search_radius < 0:
            raise ValueError(f"search_radius must be >= 0 (0: automatic), got {self.search_radius}")


@dataclass(frozen=True)
class Plan:
    """How an array is cut into blocks that are denoised one by one.

    Attributes
    ----------
    axes : str
        The resolved choice (never ``"auto"``).
    block_ndim : int
        Trailing spatial axes denoised together (time included with ``TIME``).
    rgb : bool
        The last axis holds colour channels (denoised jointly).
    time : bool
        The first axis of a block is time.
    lead_shape : tuple of int
        The shape of the leading axes, each index one block.
    """

    axes: str
    block_ndim: int
    rgb: bool
    time: bool
    lead_shape: tuple[int, ...]

    @property
    def n_blocks(self) -> int:
        return int(np.prod(self.lead_shape, dtype=np.int64))


@dataclass(frozen=True)
class Progress:
    """One step done: ``done`` of ``total``, with a message for the widget."""

    done: int
    total: int
    message: str


def plan(shape: Sequence[int], rgb: bool, axes: str) -> Plan:
    """Resolve ``axes`` for data of ``shape`` (``rgb``: the last axis is colour).

    ``"auto"``: RGB data -> ``RGB``; 2-D -> ``PLANES``; 3-D -> ``VOLUME``;
    4-D and more -> ``FRAMES`` (3-D frames).

    Raises
    ------
    ValueError
        A choice that does not fit the data (``VOLUME`` on a 2-D image,
        ``RGB`` without 3 or 4 channels last, time-lapse choices on data with
        fewer than 3 spatial axes, frames of more than 3 axes).
    """
    shape = tuple(int(n) for n in shape)
    if axes not in AXES:
        raise ValueError(f"axes must be one of {AXES}, got {axes!r}")
    if axes == RGB and not rgb:
        if len(shape) < 3 or shape[-1] not in (3, 4):
            raise ValueError(f"axes={RGB!r} needs 3 or 4 colour channels on the last axis, got shape {shape}")
        rgb = True
    spatial = len(shape) - (1 if rgb else 0)
    if spatial < 2:
        raise ValueError(f"the layer needs at least 2 spatial axes, got shape {shape}")
    if axes == AUTO:
        axes = RGB if rgb else PLANES if spatial == 2 else VOLUME if spatial == 3 else FRAMES
    if axes in (PLANES, RGB):
        block, time = 2, False
    elif axes == VOLUME:
        if spatial < 3:
            raise ValueError(f"axes={VOLUME!r} needs 3 spatial axes, got shape {shape}")
        block, time = 3, False
    else:
        if spatial < 3:
            raise ValueError(f"axes={axes!r} needs a time axis and 2 or 3 spatial axes, got shape {shape}")
        if spatial > 4:
            raise ValueError(f"axes={axes!r}: the frames (all axes after the first) must be 2-D or 3-D, "
                             f"got shape {shape}")
        block, time = (spatial - 1, False) if axes == FRAMES else (spatial, True)
    lead = shape[: spatial - block]
    return Plan(axes=axes, block_ndim=block, rgb=rgb, time=time, lead_shape=lead)


def work_dtype(dtype: np.dtype) -> np.dtype:
    """float64 stays float64; everything else (integers, bool, float16/32) is denoised as float32."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _model(block: np.ndarray, settings: Settings, channel_axis: int | None):
    from nlm.noise import Gamma, estimate_noise

    if settings.noise == "gamma" and settings.looks:
        return Gamma(settings.looks)
    return estimate_noise(block, settings.noise, channel_axis=channel_axis)


def geometry(settings: Settings, block_ndim: int, time: bool, model: Any) -> dict[str, Any]:
    """The filter's patch and window arguments for one block (what the layer's metadata records)."""
    from nlm import default_patch

    p, r = settings.patch_size, settings.search_radius
    frame = block_ndim - 1 if time else block_ndim
    if settings.method == "means":
        dp, dr = default_patch(model) if frame == 2 else VOLUME_MEANS
        p, r = p or dp, r or dr
        if time:
            return {"patch_size": (1,) + (p,) * frame, "patch_distance": (TIME_RADIUS[frame],) + (r,) * frame}
        return {"patch_size": p, "patch_distance": r}
    if time:
        if frame != 2:
            raise ValueError(f"method 'bayes' with axes={TIME!r} takes 2-D frames (a T x Y x X layer); "
                             f"choose {FRAMES!r} or method 'means' for 3-D frames")
        (tp, tr) = TIME_BAYES
        return {"patch_size": (1, p, p) if p else tp, "search_radius": (tr[0], r, r) if r else tr}
    out: dict[str, Any] = {}
    if p:
        out["patch_size"] = p
    if r:
        out["search_radius"] = r
    return out


def denoise_block(block: np.ndarray, settings: Settings, block_ndim: int, rgb: bool, time: bool,
                  model: Any = None) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Denoise one block (float array, channels last if ``rgb``); returns ``(result, model, parameters)``."""
    import nlm

    axis = -1 if rgb else None
    if model is None:
        model = _model(block, settings, axis)
    kw = geometry(settings, block_ndim, time, model)
    if settings.method == "means":
        out = nlm.denoise_nl_means(block, noise=model, channel_axis=axis, **kw)
    else:
        out = nlm.denoise_nl_bayes(block, noise=model, channel_axis=axis, **kw)
    return out, model, kw


def run(data: Any, settings: Settings, plan_: Plan) -> Generator[Progress, None, dict[str, Any]]:
    """Denoise ``data`` block by block; yields :class:`Progress`, returns the result and what was used.

    Two steps per block (the noise estimate, the filter).  The return value
    (``StopIteration.value``; napari's worker emits it as ``returned``) is a
    dict: ``image`` (the result, the input's shape, :func:`work_dtype`),
    ``models`` (one noise model per block), ``parameters`` (the filter's
    geometry, the same for every block when it is automatic for none).
    """
    data = np.asarray(data)  # a dask or zarr layer is read here, off the UI thread
    work = work_dtype(data.dtype)
    result = np.empty(data.shape, dtype=work)
    total = 2 * plan_.n_blocks
    models, params = [], {}
    for k, idx in enumerate(np.ndindex(*plan_.lead_shape)):
        where = f" (block {k + 1} of {plan_.n_blocks})" if plan_.n_blocks > 1 else ""
        block = np.ascontiguousarray(data[idx], dtype=work)
        model = _model(block, settings, -1 if plan_.rgb else None)
        models.append(model)
        yield Progress(2 * k + 1, total, f"noise{where}: {model!r}")
        out, _, params = denoise_block(block, settings, plan_.block_ndim, plan_.rgb, plan_.time, model)
        result[idx] = out
        yield Progress(2 * k + 2, total, f"denoised{where}")
    return {"image": result, "models": models, "parameters": params}


def preview(slice_: Any, settings: Settings, rgb: bool) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Denoise one 2-D slice (channels last if ``rgb``) with ``settings``, as a 2-D image.

    With ``VOLUME`` or time-lapse choices the slice is still filtered in 2-D
    (its own noise estimate, 2-D patches): a quick look at the parameters,
    not the volume's result.
    """
    block = np.ascontiguousarray(slice_, dtype=work_dtype(np.asarray(slice_).dtype))
    return denoise_block(block, settings, 2, rgb, False)


def metadata(settings: Settings, plan_: Plan, models: Sequence[Any], parameters: dict[str, Any],
             source: str) -> dict[str, Any]:
    """The result layer's ``metadata["nlm"]``: method, parameters, the estimated noise (one entry per block)."""
    import nlm

    return {
        "source": source,
        "method": settings.method,
        "noise": settings.noise,
        "looks": settings.looks or None,
        "axes": plan_.axes,
        "parameters": {k: list(v) if isinstance(v, tuple) else v for k, v in parameters.items()},
        "estimated_noise": [repr(m) for m in models],
        "nlm_version": nlm.__version__,
    }
