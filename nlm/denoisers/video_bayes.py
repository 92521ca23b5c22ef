"""Streamed space-time NL-Bayes of video (after Arias and Morel's VNLB).

:func:`denoise_frames_bayes` takes any iterable of frames and yields the
denoised frames in order.  Every step of NL-Bayes runs on space-time patches
(``pt`` frames deep) whose groups are searched in the neighbouring frames
along the motion (optical flow between consecutive frames, followed from
frame to frame); the compiled work is :mod:`nlm.ops._bayes_video`.

Streaming: each pass (step 1, step 2, the optional third pass) holds ring
buffers of ``2 R + pt`` frames (``R``: the temporal search radius) and
processes the reference frames in order; a frame is final once the
references of every frame up to ``R`` after it are processed (no later group
can reach it), and is then handed to the next pass.  Memory does not depend
on the clip's length.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from nlm._config import threads as _threads

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    from numpy.typing import ArrayLike, DTypeLike

    from nlm.noise import NoiseModel

__all__ = ["denoise_frames_bayes", "video_bayes_parameters", "MOTIONS"]

#: the motion estimators of ``motion=``: OpenCV's DIS optical flow
#: (``opencv-python-headless``, the ``video`` extra), or none (the search
#: window stays where the patch is, as on a still camera)
MOTIONS = ("auto", "dis", "none")

#: the largest motion followed from a reference to another frame (pixels per
#: axis, the sum over the frames between them): a bound on the cells of the
#: kernel (their side grows with it, so fewer cells run in parallel)
MAX_REACH = 48

#: frames between two re-checks of the noise level
RECHECK = 50
#: the first frames, whose pooled samples give the noise model
ESTIMATE_FRAMES = 3


def video_bayes_parameters(sigma255: float, channels: int = 1, multiplicative: bool = False) -> dict[str, Any]:
    """The parameters of video NL-Bayes at a noise level.

    Parameters
    ----------
    sigma255 : float >= 0
        Noise standard deviation on the 0..255 scale (signal-dependent
        noise: the root of the mean noise variance over the first frame).
    channels : int, optional
        1 (grey) or more (colour).
    multiplicative : bool, optional
        The noise model has a quadratic term (speckle, SAR gamma).

    Returns
    -------
    dict
        ``patch1``, ``patch2`` (spatial sides of the patches of steps 1 and
        2), ``depth`` (frames per patch, ``pt``), ``temporal_radius``
        (``R``: frames searched either side), ``radius`` (spatial search
        radius around the motion-compensated position, both steps),
        ``n1``, ``n2`` (group sizes), ``beta``, ``flat`` (pairs, steps 1
        and 2) and ``passes``.

    Notes
    -----
    Tuned blind on the synthetic clips of ``benchmarks/video.py``
    (panning, hand-held shake, a moving object; grey and colour; Gaussian
    sigma 10 / 20 / 40 clipped to 8 bits); see docs/video.md.
    """
    s = float(sigma255)
    if channels == 1:
        p1, p2 = 5, 5
    else:
        p1, p2 = 5, 3
    n1 = 90 if s < 30 else 120
    n2 = 60
    R = 2 if s < 15 else 3
    radius = 5
    beta = (1.0, 1.0)
    flat = (1.05, 1.05) if s < 35 else (1.05, 0.0)
    passes = 2
    del multiplicative
    return dict(patch1=p1, patch2=p2, depth=2, temporal_radius=R, radius=radius, n1=n1, n2=n2, beta=beta,
                flat=flat, passes=passes)


# --------------------------------------------------------------------------- motion
class _Motion:
    """Optical flow between consecutive frames: ``flow(a, b)`` -> (H, W, 2) float32 ``(dx, dy)``.

    ``a``, ``b``: uint8 grey images.  DIS (OpenCV, fast preset) or zeros.
    """

    def __init__(self, motion):
        self.dis = None
        if motion == "none":
            return
        try:
            import cv2
        except ImportError:
            if motion == "dis":
                raise ImportError(
                    "motion='dis' needs OpenCV (pip install 'nlm[video]' or opencv-python-headless)"
                ) from None
            warnings.warn(
                "video NL-Bayes: OpenCV is not installed, so the motion is not followed (motion='none'); "
                "install the video extra (pip install 'nlm[video]') for moving cameras and objects",
                RuntimeWarning,
                stacklevel=4,
            )
            return
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.cv2 = cv2

    def flow(self, a, b):
        if self.dis is None:
            return np.zeros(a.shape + (2,), dtype=np.float32)
        return self.dis.calc(a, b, None)


# --------------------------------------------------------------------------- one pass
class _Pass:
    """One step of NL-Bayes over a stream of frames, with ring buffers of ``2 R + pt`` frames.

    :meth:`push` takes frame ``f`` (its noisy working frame and its guide:
    the noisy frame in step 1, the previous pass's estimate after) and
    returns the frames that became final, as ``(index, noisy, estimate)``;
    :meth:`close` processes the remaining references and returns the rest.
    """

    def __init__(self, shape, dtype, cfg, nlf, tmat, motion, to_u8, blur, num_threads, slots=0):
        C, H, W = shape
        self.cfg = cfg
        self.R, self.pt, self.p = cfg["R"], cfg["pt"], cfg["p"]
        # slots: more than the 2 R + pt needed only in tests (a ring that never wraps)
        self.S = S = max(2 * self.R + self.pt, slots)
        self.noisy = np.zeros((C, S, H, W), dtype=dtype)
        self.guide = self.noisy if cfg["step1"] else np.zeros((C, S, H, W), dtype=dtype)
        self.num = np.zeros((C, S, H, W))
        self.wgt = np.zeros((S, H, W), dtype=np.float32)
        Hp, Wp = H - self.p + 1, W - self.p + 1
        self.mask = np.zeros((S, Hp, Wp), dtype=np.bool_)
        self.fwd = np.zeros((S, H, W, 2), dtype=np.float32)
        self.bwd = np.zeros((S, H, W, 2), dtype=np.float32)
        self.fmax = np.zeros(S)  # max |flow| of fwd per slot
        self.bmax = np.zeros(S)
        self.lum = np.zeros((S, H, W), dtype=np.uint8)
        from nlm.denoisers.bayes_setup import _grid

        self.rows = _grid(H, self.p, cfg["stride"])
        self.cols = _grid(W, self.p, cfg["stride"])
        self.nlf, self.tmat, self.motion, self.to_u8, self.blur = nlf, tmat, motion, to_u8, blur
        self.num_threads = num_threads
        self.read = 0  # frames pushed
        self.ref = 0  # next reference frame
        self.out = 0  # next frame to hand on

    def _flow_image(self, frame):
        u8 = self.to_u8(frame[0])
        if self.blur > 0 and self.motion.dis is not None:
            u8 = self.motion.cv2.GaussianBlur(u8, (0, 0), self.blur)
        return u8

    def push(self, f, noisy, guide):
        S, s = self.S, f % self.S
        self.noisy[:, s] = noisy
        if self.guide is not self.noisy:
            self.guide[:, s] = guide
        self.num[:, s] = 0.0
        self.wgt[s] = 0.0
        self.mask[s] = False
        self.lum[s] = self._flow_image(guide)
        if f > 0:
            prev = (f - 1) % S
            self.fwd[prev] = self.motion.flow(self.lum[prev], self.lum[s])
            self.bwd[s] = self.motion.flow(self.lum[s], self.lum[prev])
            self.fmax[prev] = float(np.abs(self.fwd[prev]).max())
            self.bmax[s] = float(np.abs(self.bwd[s]).max())
        self.read = f + 1
        done = []
        while self.ref + self.R + self.pt - 1 <= f:
            self._step(self.ref, self.ref + self.R)
            self.ref += 1
            done += self._emit(self.ref - 1 - self.R)
        return done

    def close(self):
        """The clip ended: its remaining references, then every frame left."""
        last = self.read - self.pt  # last patch start frame
        while self.ref <= last:
            self._step(self.ref, min(self.ref + self.R, last))
            self.ref += 1
        return self._emit(self.read - 1)

    def _step(self, t, f_hi):
        from nlm.ops._bayes_video import video_step

        f_lo = max(t - self.R, 0)
        S = self.S
        fr = sum(self.fmax[f % S] for f in range(t, f_hi))
        bk = sum(self.bmax[f % S] for f in range(f_lo + 1, t + 1))
        reach = int(min(MAX_REACH, np.ceil(max(fr, bk)))) if self.motion.dis is not None else 0
        c = self.cfg
        with _threads(self.num_threads):
            video_step(self.noisy, self.guide, self.num, self.wgt, self.mask, self.fwd, self.bwd, t, f_lo, f_hi,
                       self.rows, self.cols, self.p, self.pt, c["radius"], reach, c["n_sim"], c["n_max"], c["tau"],
                       c["step1"], self.nlf, self.tmat, c["beta"], c["flat"])

    def _emit(self, upto):
        done = []
        while self.out <= upto:
            s = self.out % self.S
            w = self.wgt[s]
            est = np.where(w > 0, self.num[:, s] / np.maximum(w, 1), self.noisy[:, s]).astype(self.noisy.dtype)
            done.append((self.out, self.noisy[:, s].copy(), est))
            self.out += 1
        return done


# --------------------------------------------------------------------------- the public function
def _check_motion(motion):
    if not isinstance(motion, str) or motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    return motion


def denoise_frames_bayes(
    frames: Iterable[ArrayLike],
    *,
    noise: str | NoiseModel = "auto",
    sigma: float | None = None,
    looks: float | None = None,
    temporal_radius: int | None = None,
    patch_size: int | tuple[int, int] | None = None,
    search_radius: int | None = None,
    n_similar: int | tuple[int, int] | None = None,
    passes: int | None = None,
    motion: str = "auto",
    stride: int = 2,
    num_threads: int | None = None,
    dtype: DTypeLike = np.float32,
    info: dict | None = None,
) -> Iterator[np.ndarray]:
    """Denoise a stream of video frames with space-time NL-Bayes along the motion.

    Parameters
    ----------
    frames : iterable of ndarray
        Frames of one shape, (H, W) grey or (H, W, C) colour (channels
        last), any real dtype, finite; read lazily, one at a time.  Values in
        their own units (0..255 for uint8).
    noise : str or nlm.noise.NoiseModel, keyword-only
        ``"auto"`` (default: model and level estimated on the pooled samples
        of the first :data:`ESTIMATE_FRAMES` frames,
        re-checked every :data:`RECHECK` frames), a model name of
        :mod:`nlm.noise` (``"gaussian"``, ``"poisson"``, ``"speckle"``,
        ``"gamma"``), or a model instance in the frames' units.  On 8-bit
        frames the estimate detects noise clipped at 0 / 255 and uses the
        clipped model (see :func:`nlm.denoise_nl_bayes`).
    sigma : float >= 0, keyword-only
        Known Gaussian noise std in the frames' units (implies
        ``noise="gaussian"``).
    looks : float > 0, keyword-only
        Number of looks of SAR speckle (``noise="gamma"``).
    temporal_radius : int >= 0, keyword-only
        ``R``: groups are searched in the ``R`` frames either side (patch
        start frames).  Default from :func:`video_bayes_parameters`.
    patch_size : int or (int, int), keyword-only
        Spatial patch sides (odd) of steps 1 and 2; the patches are 2 frames
        deep (1 for a one-frame clip).
    search_radius : int >= 1, keyword-only
        Spatial search radius around the motion-compensated position.
    n_similar : int or (int, int), keyword-only
        Group sizes of steps 1 and 2.
    passes : {2, 3}, keyword-only
        2: the two steps; 3: step 2 again on its own result.
    motion : {"auto", "dis", "none"}, keyword-only
        ``"dis"``: OpenCV's DIS optical flow (fast preset) between
        consecutive frames, on the blurred noisy luminance in step 1 and on
        the previous estimate after; ``"none"``: no motion (a still camera);
        ``"auto"`` (default): DIS when OpenCV is installed, else none with
        a ``RuntimeWarning``.
    stride : int >= 1, keyword-only
        Step of the spatial reference grid (every frame is a reference
        frame; positions already estimated in a group are skipped).
    num_threads : int >= 1, keyword-only
        Numba threads (the result does not depend on it).
    dtype : float32 or float64, keyword-only
        Working and output type (the group estimates are float64).
    info : dict, keyword-only
        If given, filled on the first frame with ``model`` (the noise model,
        frames' units), ``sigma255`` (its level on the 0..255 scale) and the
        parameters used, and ``rechecks``: ``(frame, sigma255)`` of every
        re-check of the level.

    Yields
    ------
    ndarray
        The denoised frames in order, each of the input frame's shape, in
        ``dtype``, in the frames' units (not rounded).

    Raises
    ------
    TypeError, ValueError
        Bad parameters, frames of differing shapes, non-finite values, a
        model that does not fit the data (raised on the first ``next``).
    ImportError
        ``motion="dis"`` without OpenCV.

    Notes
    -----
    Each step is that of :func:`nlm.denoise_nl_bayes`, on boxes of ``pt = 2``
    frames x ``p x p`` pixels: step 1 groups the ``n1`` patches nearest to
    the reference on the noisy luminance and estimates every colour channel
    on its own, ``X = m + (C_Y - beta D) C_Y^-1 (Y - m)``; step 2 groups on
    the basic estimate (all channels jointly in the decorrelated colour
    space) and uses its covariance, ``X = m_Y + C_B (C_B + beta D)^-1 (Y -
    m_Y)``; ``D`` from the noise model's level function at the group's mean
    (the clipped observation's variance for clipped data, whose estimate is
    mapped back through the inverse clipped mean).  The group of a
    reference in frame ``t`` is searched in frames ``t - R .. t + R``, in
    each a ``(2 r + 1)^2`` window centred where the patch moved: the DIS
    flow between consecutive frames, followed frame to frame at the patch's
    centre, rounded to whole pixels and bounded by :data:`MAX_REACH`.  All
    members of a group are marked as estimated in their frames (they are
    not references later), which is what makes space-time groups
    affordable: most positions of a frame are already estimated when it
    becomes the reference frame.

    Streaming: a pass holds ``2 R + pt`` frames (noisy, guide, float64
    numerator, weights, marks, two flow fields); frame ``f`` leaves it once
    the reference frame ``f + R`` is processed, so a pass yields its first
    frame ``R + pt - 1 + R`` frames after it read it, and the output lags
    the input by that per pass.  Memory is independent of the clip's
    length; time per frame is about that of a 2-D NL-Bayes with patches
    ``pt`` times larger on a fraction of the references.

    The result does not depend on the thread count (the kernel's cells,
    :mod:`nlm.ops._bayes_video`).

    References
    ----------
    .. [1] P. Arias, J.-M. Morel, "Video denoising via empirical Bayesian
       estimation of space-time patches", J. Math. Imaging Vis. 60, 2018.
    .. [2] T. Kroeger, R. Timofte, D. Dai, L. Van Gool, "Fast optical flow
       using dense inverse search", ECCV 2016.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> clean = np.tile(np.linspace(0, 200, 40), (32, 1))
    >>> clip = [np.clip(np.roll(clean, t, axis=1) + rng.normal(0, 10, clean.shape), 0, 255) for t in range(5)]
    >>> out = list(denoise_frames_bayes(clip, sigma=10.0, motion="none"))
    >>> len(out), out[0].shape, out[0].dtype
    (5, (32, 40), dtype('float32'))
    """
    from nlm._validate import _check_int
    from nlm.denoisers.bayes_setup import _check_passes, _pair

    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    motion = _check_motion(motion)
    stride = _check_int(stride, "stride", 1)
    if num_threads is not None:
        num_threads = _check_int(num_threads, "num_threads", 1)
    if temporal_radius is not None:
        temporal_radius = _check_int(temporal_radius, "temporal_radius", 0)
    if search_radius is not None:
        search_radius = _check_int(search_radius, "search_radius", 1)
    p_user = _pair(patch_size, "patch_size", odd=True)
    n_user = _pair(n_similar, "n_similar", minimum=2)
    passes = _check_passes(passes)
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info must be a dict or None, got {type(info).__name__}")
    return _stream(frames, noise, sigma, looks, temporal_radius, p_user, search_radius, n_user, passes, motion,
                   stride, num_threads, dtype, info)


def _stream(frames, noise, sigma, looks, R_user, p_user, r_user, n_user, passes, motion, stride, num_threads,
            dtype, info):
    from nlm.denoisers.bayes_passes import _mix
    from nlm.denoisers.bayes_setup import TAU3, _level_table, _parameters, _uniform_interp

    it = iter(frames)
    try:
        first = np.asarray(next(it))
    except StopIteration:
        return
    if first.dtype.kind not in "biuf" or first.ndim not in (2, 3) or first.size == 0:
        raise ValueError(f"frames must be real (H, W) or (H, W, C) arrays, got {first.dtype} {first.shape}")
    shape = first.shape
    H, W = shape[:2]
    C = shape[2] if first.ndim == 3 else 1
    state = {"read": 0}

    def as_cf(a):
        a = np.asarray(a)
        if a.shape != shape:
            raise ValueError(f"frame {state['read']} has shape {a.shape}, the first frame {shape}")
        x = a.astype(dtype, copy=False)
        if not np.isfinite(x).all():
            raise ValueError(f"frame {state['read']} holds NaN or infinite values")
        state["read"] += 1
        return np.ascontiguousarray(x.reshape(H, W, C).transpose(2, 0, 1))

    # the first frames: the noise model is fitted on their pooled samples (as channels of one image)
    raw = [as_cf(first)]
    for a in it:
        raw.append(as_cf(a))
        if len(raw) >= ESTIMATE_FRAMES:
            break
    x0 = raw[0]
    model_arg = noise
    blind = sigma is None and looks is None and not _is_model(noise)
    if blind and len(raw) > 1:
        from nlm.noise import estimate_noise

        try:
            model_arg = estimate_noise(np.concatenate(raw), noise, channel_axis=0)
        except ValueError:
            model_arg = noise  # _parameters repeats the first frame's fit and its error
    prm = _parameters(x0, first.dtype, model_arg, sigma, looks, True, (1, 1), (2, 2), 1, None, None, passes)
    prm["estimated"] = blind
    e = prm["exponent"]

    def out_frame(cf):
        o = cf[0] if first.ndim == 2 else np.ascontiguousarray(cf.transpose(1, 2, 0))
        return o.astype(dtype, copy=False)

    if info is not None:
        info.update(model=prm["user_model"], sigma255=prm["sigma255"], rechecks=[])
    if prm["identity"]:
        for x in raw:
            yield out_frame(x)
        for a in it:
            yield out_frame(as_cf(a))
        return
    model, tmat = prm["model"], prm["tmat"]
    vp = video_bayes_parameters(prm["sigma255"], C, multiplicative=model.c > 0)
    p1, p2 = p_user if p_user is not None else (vp["patch1"], vp["patch2"])
    n1, n2 = n_user if n_user is not None else (vp["n1"], vp["n2"])
    R = vp["temporal_radius"] if R_user is None else R_user
    rad = vp["radius"] if r_user is None else r_user
    npass = vp["passes"] if passes is None else passes
    beta = (1.1, 1.1) if model.c > 0 else vp["beta"]
    flat = vp["flat"]
    p1 = min(p1, _odd(min(H, W)))
    p2 = min(p2, _odd(min(H, W)))
    rad = min(rad, max(H, W) - 1)
    if info is not None:
        info.update(patch_size=(p1, p2), n_similar=(n1, n2), temporal_radius=R, search_radius=rad, passes=npass,
                    motion=motion)
    nlf, unbias = _level_table(model, prm["lo"], prm["hi"])

    def work(cf):
        if e:
            cf = np.ldexp(cf, e).astype(dtype, copy=False)
        return np.ascontiguousarray(_mix(tmat, cf).astype(dtype, copy=False))

    w0 = work(x0)
    # the flow's 8-bit images: the luminance over the first frame's range
    lo0, hi0 = float(w0[0].min()), float(w0[0].max())
    span = max(hi0 - lo0, 1e-30)

    def to_u8(lum):
        return np.clip((lum - lo0) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)

    mot = _Motion(motion)
    # step 1 matches noisy frames: blur them for the flow (more for more noise)
    blur1 = float(np.clip(prm["sigma255"] / 10.0, 0.5, 3.0))
    cand = (2 * R + 1) * (2 * rad + 1) ** 2
    tau = prm["tau"]
    cfgs = []
    for k in range(npass):
        step1 = k == 0
        n_max = n1 if step1 else (max(n2, min(2 * n1, cand)) if k == 1 else max(n2, cand))
        cfgs.append(dict(step1=step1, p=p1 if step1 else p2, pt=1, R=R, radius=rad, stride=stride,
                         n_sim=min(n1 if step1 else n2, cand), n_max=min(n_max, cand),
                         tau=tau if k == 1 else TAU3 * prm["mean_var"], beta=float(beta[0 if step1 else 1]),
                         flat=float(flat[0 if step1 else 1])))

    # the frames read decide the patches' depth (a one-frame clip: 1)
    head = [w0] + [work(x) for x in raw[1:]]
    pt = min(2, len(head))
    for c in cfgs:
        c["pt"] = pt
    stages = [_Pass((C, H, W), dtype, c, nlf, tmat, mot, to_u8, blur1 if c["step1"] else 0.0, num_threads)
              for c in cfgs]

    def finish(est):
        out = _mix(tmat.T, est)
        if unbias is not None:
            out = _uniform_interp(out, unbias)
        if e:
            out = np.ldexp(out, -e)
        return out_frame(out)

    def cascade(items, k):
        for st in stages[k:]:
            nxt = []
            for f, noisy, est in items:
                nxt += st.push(f, noisy, est)
            items = nxt
        return items

    def frames_in():
        yield from ((None, w) for w in head)
        for a in it:
            x = as_cf(a)
            yield x, work(x)

    rechecks = info["rechecks"] if info is not None else []
    for f, (x, w) in enumerate(frames_in()):
        if x is not None and prm["estimated"] and f % RECHECK == 0:
            _recheck(x, f, prm, rechecks)
        for _, _, est in cascade([(f, w, w)], 0):
            yield finish(est)
    for k, st in enumerate(stages):
        for _, _, est in cascade(st.close(), k + 1):
            yield finish(est)


def _recheck(x, f, prm, rechecks):
    """Re-estimate the noise level on frame ``f`` (channel-first, the frames' units); warn when its std moved
    by more than 30 % from the first frame's (the parameters and the model stay those of the first frame)."""
    from nlm.noise import estimate_noise

    e = prm["exponent"]
    xs = np.ldexp(x, e) if e else x
    try:
        m = estimate_noise(xs, prm["model"].name, channel_axis=0)
    except (ValueError, TypeError):
        return
    var = float(np.mean(m.variance(xs)))
    s255 = prm["sigma255"] * np.sqrt(var / prm["mean_var"]) if prm["mean_var"] > 0 else 0.0
    rechecks.append((f, float(s255)))
    ratio = s255 / prm["sigma255"] if prm["sigma255"] > 0 else np.inf
    if not 1 / 1.3 <= ratio <= 1.3:
        warnings.warn(
            f"video NL-Bayes: the noise level at frame {f} (sigma {s255:.3g} of 255) differs from the first "
            f"frame's ({prm['sigma255']:.3g}) by more than 30 %; the first frame's model is kept (give sigma= "
            "or noise= if the clip's noise changes)",
            RuntimeWarning,
            stacklevel=3,
        )


def _is_model(noise):
    from nlm.noise import NoiseModel

    return isinstance(noise, NoiseModel)


def _odd(n):
    return n if n % 2 else n - 1
