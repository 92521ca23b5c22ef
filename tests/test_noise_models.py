"""Tests of the noise-model layer: models, samplers, blind NLF estimation,
transforms, and the import architecture."""

import ast
import pathlib

import numpy as np
import pytest
from skimage import data
from skimage.util import img_as_float, random_noise

from nlm.noise import (
    Gamma,
    Gaussian,
    PoissonGaussian,
    Speckle,
    estimate_noise,
    estimate_sigma,
    make_model,
    transforms,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _steps(shape=(256, 256), levels=(0.1, 0.25, 0.4, 0.55, 0.7, 0.85)):
    """Piecewise-constant vertical stripes."""
    x = np.empty(shape)
    edges = np.linspace(0, shape[1], len(levels) + 1).astype(int)
    for v, a, b in zip(levels, edges[:-1], edges[1:]):
        x[:, a:b] = v
    return x


@pytest.mark.parametrize(
    "model, coef",
    [
        (Gaussian(0.1), (0.01, 0, 0)),
        (PoissonGaussian(0.02, 0.05), (0.0025, 0.02, 0)),
        (Speckle(0.04), (0, 0, 0.04)),
        (Gamma(4), (0, 0, 0.25)),
    ],
)
def test_coefficients_and_sample_moments(model, coef):
    np.testing.assert_allclose(model.coefficients, coef, rtol=1e-12, atol=1e-15)
    x = np.full((400, 400), 0.4)
    y = model.sample(x, seed=1)
    assert y.dtype == np.float64
    assert y.mean() == pytest.approx(0.4, abs=0.004)
    assert y.var() == pytest.approx(model.variance(0.4), rel=0.03)
    assert model.variance(np.array([0.0, 0.4])).shape == (2,)


def test_speckle_sampler_is_scikit_images():
    x = _steps((64, 80))
    np.testing.assert_array_equal(Speckle(0.04).sample(x, seed=3), random_noise(x, "speckle", var=0.04, rng=3))


def test_gamma_is_unclipped_and_seeded():
    x = np.full((64, 64), 0.9)
    y = Gamma(1).sample(x, seed=5)
    assert y.max() > 1.5 and y.min() >= 0
    np.testing.assert_array_equal(y, Gamma(1).sample(x, seed=5))
    assert not np.array_equal(y, Gamma(1).sample(x, seed=6))
    assert Gamma(1).sample(x.astype(np.float32)).dtype == np.float32


def test_make_model_and_errors():
    assert make_model("gamma", looks=4) == Gamma(4)
    assert make_model("gamma", var=0.25) == Gamma(4)
    assert make_model("speckle", var=0.04) == Speckle(0.04)
    assert make_model("poisson", gain=0.1, sigma=0.2) == PoissonGaussian(0.1, 0.2)
    assert make_model("gaussian", sigma=0.1) == Gaussian(0.1)
    for kwargs, exc, word in [
        (dict(name="laplace"), ValueError, "noise"),
        (dict(name=3), TypeError, "noise"),
        (dict(name="gamma"), ValueError, "looks"),
        (dict(name="gamma", looks=0), ValueError, "looks"),
        (dict(name="gamma", looks="4"), TypeError, "looks"),
        (dict(name="gaussian", looks=4), ValueError, "looks"),
        (dict(name="gamma", looks=4, var=0.2), ValueError, "either"),
    ]:
        with pytest.raises(exc, match=word):
            make_model(**kwargs)
    with pytest.raises(ValueError, match="non-negative"):
        Gamma(2).sample(np.array([-1.0, 1.0]))
    with pytest.raises(TypeError, match="seed"):
        Gamma(2).sample(np.ones(4), seed="x")


@pytest.mark.parametrize(
    "model, name, param, rel",
    [
        (Gaussian(0.05), "gaussian", "sigma", 0.05),
        (PoissonGaussian(0.02, 0.02), "poisson", "gain", 0.1),
        (Speckle(0.04), "speckle", "var", 0.05),
        (Gamma(1), "gamma", "looks", 0.06),
        (Gamma(4), "gamma", "looks", 0.06),
        (Gamma(16), "gamma", "looks", 0.06),
    ],
)
def test_blind_fit_picks_the_model(model, name, param, rel):
    y = model.sample(_steps(), seed=0)
    est = estimate_noise(y)
    assert est.name == name
    assert getattr(est, param) == pytest.approx(getattr(model, param), rel=rel)


@pytest.mark.parametrize("looks", [1, 16])
def test_looks_on_a_natural_image_within_10_percent(looks):
    clean = img_as_float(data.camera())[::2, ::2]
    est = estimate_noise(Gamma(looks).sample(clean, seed=1), "gamma")
    assert est.looks == pytest.approx(looks, rel=0.1)


def test_textured_image_gaussian_sigma():
    clean = img_as_float(data.brick())
    y = Gaussian(0.1).sample(clean, seed=2)
    assert estimate_noise(y, "gaussian").sigma == pytest.approx(0.1, rel=0.05)


def test_zero_background_and_saturation_are_ignored():
    x = _steps()
    x[:, :60] = 0.0  # exactly-zero background: zero variance is signal
    y = Gamma(4).sample(x, seed=4)
    y[:40] = 1.0  # a saturated band
    est = estimate_noise(y)
    assert est.name == "gamma" and est.looks == pytest.approx(4, rel=0.1)


def test_clipped_speckle_is_speckle():
    clean = img_as_float(data.camera())
    est = estimate_noise(Speckle(0.04).sample(clean, seed=0))
    assert est.name == "speckle" and est.var == pytest.approx(0.04, rel=0.1)


def test_small_constant_and_channels():
    # too small for blocks: falls back to the wavelet-MAD sigma, no error
    est = estimate_noise(np.random.default_rng(0).normal(0.5, 0.1, (10, 10)))
    assert est.name == "gaussian" and 0.03 < est.sigma < 0.3
    assert estimate_noise(np.full((64, 64), 0.3)).name == "gaussian"
    tiny = Gamma(4).sample(np.full((12, 12), 0.5), seed=3)
    assert estimate_noise(tiny, "gamma").name == "gamma"
    assert estimate_noise(tiny, "speckle").name == "speckle"
    assert estimate_noise(tiny, "poisson").name == "poisson"
    assert estimate_noise(np.full((64, 64), 0.3)).sigma == 0.0
    rgb = Gamma(4).sample(np.stack([_steps()] * 3, axis=0), seed=7)
    est = estimate_noise(rgb, channel_axis=0)
    assert est.name == "gamma" and est.looks == pytest.approx(4, rel=0.1)
    vol = Gaussian(0.05).sample(np.full((24, 40, 40), 0.5), seed=8)
    assert estimate_noise(vol).sigma == pytest.approx(0.05, rel=0.05)
    sig = Gaussian(0.05).sample(np.full(4000, 0.5), seed=9)
    assert estimate_noise(sig).sigma == pytest.approx(0.05, rel=0.05)


@pytest.mark.parametrize("noise", ["auto", "gaussian", "poisson", "speckle"])
def test_short_signals_and_small_images_get_an_estimate(noise):
    # every length and small shape: blocks of 2 samples at the least (1-D of 5 samples divided by zero once)
    rng = np.random.default_rng(11)
    for shape in [(n,) for n in range(1, 41)] + [(3, 3), (4, 5), (5, 5), (6, 7), (2, 9, 9)]:
        est = estimate_noise(rng.uniform(0.2, 0.8, shape), noise)
        assert np.all(np.isfinite(est.variance(np.full(3, 0.5)))), (shape, est)


def test_estimate_noise_errors():
    with pytest.raises(ValueError, match="noise"):
        estimate_noise(np.ones((8, 8)), "laplace")
    with pytest.raises(TypeError, match="noise"):
        estimate_noise(np.ones((8, 8)), 1)
    with pytest.raises(ValueError, match="non-negative"):
        estimate_noise(-np.ones((8, 8)), "gamma")
    with pytest.raises(ValueError, match="NaN"):
        estimate_noise(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="channel_axis"):
        estimate_noise(np.ones((8, 8)), channel_axis=4)


def test_estimate_sigma_is_the_gaussian_special_case():
    y = Gaussian(0.1).sample(np.full((256, 256), 0.5), seed=0)
    assert estimate_sigma(y) == pytest.approx(estimate_noise(y, "gaussian").sigma, rel=0.03)
    import nlm
    from nlm.denoisers.means import estimate_sigma as used_by_means

    # one function: the noise layer's, which the denoisers use; nlm.estimate_sigma
    # is nlm.tiling's dask-aware wrapper of it (same signature and docstring)
    assert used_by_means is estimate_sigma and nlm.estimate_sigma.__wrapped__ is estimate_sigma
    assert nlm.estimate_sigma(y) == estimate_sigma(y)


def test_transforms():
    y = np.linspace(0.01, 2, 50)
    for t in ("sqrt", "log"):
        np.testing.assert_allclose(transforms.inverse(transforms.forward(y, t), t), y, rtol=1e-12)
    assert transforms.log_bias(1) == pytest.approx(-0.5772156649, abs=1e-9)
    m = PoissonGaussian(0.01, 0.02)
    z = transforms.forward(m.sample(np.full((300, 300), 0.3), seed=0), "anscombe", model=m)
    assert z.std() == pytest.approx(1.0, rel=0.03)
    assert transforms.inverse(z, "anscombe", model=m).mean() == pytest.approx(0.3, rel=0.01)


# ----------------------------------------------------------------- architecture
def _imports():
    graph = {}
    for path in (ROOT / "nlm").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nlm"):
                deps.add(node.module)
                deps.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("nlm"))
        graph[name] = deps
    modules = set(graph)
    return {m: {d for d in deps if d in modules and d != m and d != "nlm"} for m, deps in graph.items()}


def test_no_import_cycles():
    graph = _imports()
    state = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [m, d]))
            if d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


#: the layers, bottom to top (docs/architecture.md): a module may import its own
#: layer's modules and those below, never one above
LAYERS = (
    ("nlm._validate", "nlm._config", "nlm.metrics"),
    ("nlm.noise", "nlm.ops", "nlm.io"),
    ("nlm.denoisers", "nlm.nn"),
    ("nlm.tiling",),
    ("nlm.cli", "nlm.__main__"),
    ("nlm.napari",),
)


def _layer(module):
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def test_no_module_imports_a_layer_above_it():
    graph = _imports()
    for m, deps in graph.items():
        if m == "nlm":  # the package itself: lazy name table only
            continue
        _layer(m)  # every module has a layer (one that imports nothing from nlm too)
        above = {d for d in deps if _layer(d) > _layer(m)}
        assert not above, f"{m} (layer {_layer(m)}) imports {above} from above it"


def test_siblings_at_the_bottom_are_independent():
    # the noise layer, the operation and I/O sit side by side: none imports another
    graph = _imports()
    for m, deps in graph.items():
        for a, b in (("nlm.noise", "nlm.ops"), ("nlm.noise", "nlm.io"), ("nlm.ops", "nlm.noise"),
                     ("nlm.ops", "nlm.io"), ("nlm.io", "nlm.noise"), ("nlm.io", "nlm.ops")):
            if m == a or m.startswith(a + "."):
                bad = {d for d in deps if d == b or d.startswith(b + ".")}
                assert not bad, f"{m} imports {bad}"


def test_noise_layer_is_at_the_bottom():
    graph = _imports()
    for m, deps in graph.items():
        if m == "nlm.noise" or m.startswith("nlm.noise."):
            bad = {d for d in deps if not (d.startswith("nlm.noise") or d in ("nlm._validate", "nlm._config"))}
            assert not bad, f"{m} imports {bad} from above the noise layer"
    assert "nlm.denoisers.means" not in {d for m, deps in graph.items() if m == "nlm.denoisers.speckle" for d in ()}
    assert "nlm.denoisers.speckle" not in graph["nlm.denoisers.means"]


# ------------------------------------------------- blind model choice: robustness
def _grey(name):
    from skimage.color import rgb2gray

    x = getattr(data, name)()
    return img_as_float(rgb2gray(x) if x.ndim == 3 else x)


@pytest.mark.parametrize("var", [0.01, 0.1])
def test_narrow_range_speckle_is_multiplicative(var):
    # moon's smooth blocks span only 0.37-0.49: the level function must still
    # be told from a constant (ordering the blocks by one half and placing
    # them by the other keeps the noise of the block means from flattening it)
    est = estimate_noise(Speckle(var).sample(_grey("moon"), seed=0))
    assert est.name == "speckle" and est.var == pytest.approx(var, rel=0.05)


@pytest.mark.parametrize("name", ["coins", "brick", "moon"])
@pytest.mark.parametrize("sigma255", [10, 50])
def test_clipped_gaussian_is_gaussian(name, sigma255):
    # the benchmark's Gaussian noise is clipped to [0, 1]; textured coins and
    # brick must not look signal-dependent, clipping must not bias sigma
    from nlm.noise import add_noise

    sigma = sigma255 / 255
    y = add_noise(_grey(name), "gaussian", var=sigma**2, seed=1)
    est = estimate_noise(y)
    assert est.name == "gaussian" and est.sigma == pytest.approx(sigma, rel=0.04)


def test_clipping_does_not_bias_sigma():
    # 0.5 +- 2.55 sigma: a quarter of the blocks touch a clipped level; dropping
    # them (as touching a plateau) would select low-variance blocks (-5 %)
    y = np.clip(Gaussian(0.196).sample(np.full((256, 256), 0.5), seed=0), 0, 1)
    assert estimate_noise(y, "gaussian").sigma == pytest.approx(0.196, rel=0.03)
    # a ramp clipped at both ends: only the blocks near the clipping levels go
    x = np.repeat(np.linspace(-0.2, 1.2, 256)[None, :], 256, 0)
    y = np.clip(Gaussian(0.05).sample(x, seed=1), 0, 1)
    est = estimate_noise(y)
    assert est.name == "gaussian" and est.sigma == pytest.approx(0.05, rel=0.04)


def test_isolated_zero_pixels_are_signal_not_clipping():
    # moon has 240 exactly-zero pixels in 2x2 clusters; gamma speckle keeps
    # them at 0.  With L = 1 every block is within one noise deviation of 0,
    # so treating the zeros as clipping would drop every block.
    est = estimate_noise(Gamma(1).sample(_grey("moon"), seed=0))
    assert est.name == "gamma" and est.looks == pytest.approx(1, rel=0.1)


@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_poisson_gaussian_parameters(name):
    # a = sigma^2 = 1e-4, b = 0.01: the gain within 10 %, the level function
    # within 10 % over [0.1, 1] (sigma alone is poorly determined when a is 2 %
    # of the variance, see the README)
    true = PoissonGaussian(0.01, 0.01)
    est = estimate_noise(true.sample(_grey(name), seed=0))
    assert est.name == "poisson" and est.gain == pytest.approx(0.01, rel=0.1)
    xs = np.linspace(0.1, 1.0, 10)
    np.testing.assert_allclose(est.variance(xs), true.variance(xs), rtol=0.1)


def _saturating_level(seed):
    """A dark background (most smooth blocks at 0.05), a 0.05 -> 0.15 ramp over which the noise variance
    rises, then saturates (0.0004 -> 0.0007, as the Rician level does away from the air), and a small flat
    area at 0.8: one bin far above all the others."""
    rng = np.random.default_rng(seed)
    x = np.full((256, 256), 0.05)
    x[144:240] = np.linspace(0.05, 0.15, 256)[None, :]
    x[240:] = 0.8
    var = np.minimum(0.0004 + 0.003 * (x - 0.05), 0.0007)
    return x + np.sqrt(var) * rng.standard_normal(x.shape)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_slope_carried_by_one_bin_apart_is_not_taken(seed, monkeypatch):
    # the slope of a + b x comes from one bin far above the rest: extrapolated to 0.8 it would give a std
    # of 0.05 where the noise has 0.026; auto answers Gaussian (without the rule: Poisson-Gaussian)
    from nlm.noise import _fits

    y = _saturating_level(seed)
    model, details = estimate_noise(y, return_details=True)
    assert model.name == "gaussian" and details.get("one_bin_apart")
    assert model.sigma == pytest.approx(0.02, rel=0.1)
    monkeypatch.setattr(_fits, "_APART", np.inf)
    assert estimate_noise(y).name == "poisson"


def test_one_bin_apart():
    from nlm.noise._fits import _one_bin_apart

    cluster = np.linspace(0.005, 0.007, 12)
    assert _one_bin_apart(np.r_[cluster, 0.0074 + 0.05])  # 50 x the others' span above them
    assert _one_bin_apart(np.r_[-0.05, cluster])  # the same below
    assert not _one_bin_apart(np.r_[cluster, 0.015])  # 4 x the span: not apart
    assert not _one_bin_apart(np.linspace(0.1, 0.9, 24))  # bins spread over the range
    assert not _one_bin_apart(np.array([0.1, 0.9]))  # two bins: nothing to compare with


def test_third_cumulant_tells_poisson_from_speckle():
    # on moon's narrow range a + b x and c x^2 fit the variances alike; the
    # skewness of the noise (b^2 x against 0) does not
    clean = _grey("moon")
    assert estimate_noise(PoissonGaussian(0.05, 0.0).sample(clean, seed=1)).name == "poisson"
    assert estimate_noise(Speckle(0.1).sample(clean, seed=1)).name == "speckle"


@pytest.mark.parametrize("size", [64, 128])
def test_gaussian_never_taken_for_multiplicative_on_small_crops(size):
    # the costly mistake (1.3-5 dB with NL-Bayes): few blocks on a narrow range
    # must not give strong evidence for c x^2; the hedge is a + b x
    for name in ("moon", "brick", "text", "coins", "camera"):
        x = _grey(name)
        top, left = (x.shape[0] - size) // 2, (x.shape[1] - size) // 2
        crop = x[top : top + size, left : left + size]
        for seed in range(3):
            est = estimate_noise(Gaussian(0.05).sample(crop, seed=seed))
            assert est.name in ("gaussian", "poisson"), (name, seed, est)
            # and the level where the crop lies is right (texture of the coins
            # crop leaks in: +24 % at worst)
            assert est.variance(crop.mean()) == pytest.approx(0.0025, rel=0.3), (name, seed, est)


# ------------------------------------------------------------ clipped data
@pytest.mark.parametrize(
    "model",
    [Gaussian(0.15, clip=True), PoissonGaussian(0.01, 0.05, clip=True), Speckle(0.1), Gaussian(0.02, clip=True)],
)
def test_observed_moments_match_monte_carlo(model):
    # the closed forms against the sampler (which clips) at values inside,
    # near and at the bounds; Poisson is normal only approximately
    rel = 0.05 if model.name == "poisson" else 0.02
    for x in (0.0, 0.03, 0.2, 0.5, 0.9, 0.98, 1.0):
        y = model.sample(np.full(200_000, x), seed=int(x * 100))
        m, v = model.observed_moments(x)
        assert m == pytest.approx(y.mean(), abs=3 * np.sqrt(v / y.size) + 1e-12)
        assert v == pytest.approx(y.var(), rel=rel, abs=1e-12)


@pytest.mark.parametrize("model", [Gaussian(0.05, clip=True), Speckle(0.01), PoissonGaussian(0.001, 0.02, clip=True)])
def test_clipped_moments_are_unclipped_far_from_the_bounds(model):
    x = np.linspace(0.0, 1.0, 1001)
    m, v = model.observed_moments(x)
    s = np.sqrt(model.variance(x))
    far = (x > 6 * s) & (1 - x > 6 * s)
    np.testing.assert_allclose(m[far], x[far], rtol=0, atol=1e-8)
    np.testing.assert_allclose(v[far], model.variance(x[far]), rtol=1e-6)
    # clipping only removes variance and pulls the mean inside [0, 1]
    assert (v <= model.variance(x) * (1 + 1e-9)).all() and (m >= 0).all() and (m <= 1).all()
    assert (np.diff(m) >= -1e-12).all()  # increasing: invertible on the observed range
    # at a bound: the half-normal for Gaussian noise
    if model.name == "gaussian":
        assert m[0] == pytest.approx(model.sigma / np.sqrt(2 * np.pi))
        assert v[0] == pytest.approx(model.sigma**2 * (0.5 - 1 / (2 * np.pi)))


def test_unclipped_moments_and_clip_flag():
    for model in (Gaussian(0.1), PoissonGaussian(0.01, 0.1), Speckle(0.04, clip=False), Gamma(4)):
        assert not model.clip
        m, v = model.observed_moments(np.array([0.0, 0.5, 1.0]))
        np.testing.assert_array_equal(m, [0.0, 0.5, 1.0])
        np.testing.assert_allclose(v, model.variance(np.array([0.0, 0.5, 1.0])))
    assert Gaussian(0.1, clip=True) != Gaussian(0.1) and Gaussian(0.1, clip=True) == Gaussian(0.1, clip=True)
    assert Speckle(0.04).clip and "clip=True" in repr(Gaussian(0.1, clip=True))
    y = Gaussian(0.5, clip=True).sample(np.full(1000, 0.5), seed=0)
    assert y.min() == 0.0 and y.max() == 1.0
    with pytest.raises(TypeError, match="clip"):
        Gaussian(0.1, clip="yes")
    assert Gaussian(0.1, clip=True).scaled(2.0) == Gaussian(0.2, clip=(0, 2))  # the bounds scale with the image


@pytest.mark.parametrize("name", ["camera", "astronaut"])
def test_estimate_reports_clipping(name):
    from nlm.noise import add_noise

    for sigma255 in (25, 50):
        sigma = sigma255 / 255
        est = estimate_noise(add_noise(_grey(name), "gaussian", var=sigma**2, seed=2))
        # the unclipped sigma (fitted away from the bounds) and the clipping
        assert est.name == "gaussian" and est.clip and est.sigma == pytest.approx(sigma, rel=0.03)
        # the same noise unclipped: no clipping reported, the same sigma
        unclipped = estimate_noise(Gaussian(sigma).sample(_grey(name), seed=2))
        assert not unclipped.clip and unclipped.sigma == pytest.approx(est.sigma, rel=0.03)


def test_plateaus_are_not_clipping():
    # an exactly-zero background (Poisson noise keeps it at 0) and gamma
    # speckle on moon's black pixels are signal, not clipped noise
    x = _steps()
    x[:, :60] = 0.0
    assert not estimate_noise(PoissonGaussian(0.01).sample(x, seed=3)).clip
    assert not estimate_noise(Gamma(1).sample(_grey("moon"), seed=0)).clip
    # values inside (0, 1) only: no clipping
    assert not estimate_noise(Gaussian(0.05).sample(_steps(), seed=1)).clip
