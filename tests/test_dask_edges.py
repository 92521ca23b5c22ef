"""dask arrays at the edges (issue 18, part 5): unknown chunk sizes, odd chunks, empty axes.

Every function that takes a dask array refuses one whose chunk sizes are
unknown (NaN, as after boolean indexing) with the same ``ValueError`` naming
the chunks, before anything is computed; size-1 chunks, chunks smaller than
the margin, uneven chunks and empty axes give the in-memory result or the
in-memory error.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")

import nlm  # noqa: E402
from nlm import tiling  # noqa: E402
from nlm._validate import _check_chunks, _describe_chunks  # noqa: E402
from nlm.noise import estimate_noise  # noqa: E402


def _noisy(shape=(30, 21), seed=0):
    rng = np.random.default_rng(seed)
    clean = np.linspace(0.2, 0.8, shape[-1], dtype=np.float32) * np.ones(shape, np.float32)
    return (clean + rng.normal(0, 0.05, shape)).astype(np.float32)


class _Untouchable:
    """An array whose blocks must not be read: any read fails the test."""

    def __init__(self, a):
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim

    def __getitem__(self, index):
        raise AssertionError("the array was read")


def _unknown(a, chunks=8):
    """A dask array with unknown row chunks that fails if anything is computed."""
    lazy = da.from_array(_Untouchable(a), chunks=chunks, asarray=True, meta=np.empty((0,) * a.ndim, a.dtype))
    return lazy[lazy[:, 0] > -1]


ENTRY_POINTS = {
    "denoise_nl_means": lambda x: nlm.denoise_nl_means(x, sigma=0.05),
    "denoise_nl_means automatic": lambda x: nlm.denoise_nl_means(x),
    "denoise_nl_bayes": lambda x: nlm.denoise_nl_bayes(x, sigma=0.05),
    "denoise_nl_bayes automatic": lambda x: nlm.denoise_nl_bayes(x),
    "estimate_sigma": lambda x: nlm.estimate_sigma(x),
    "estimate_noise": lambda x: estimate_noise(x),
    "nlm.noise.estimate_noise": lambda x: nlm.estimate_noise(x),
    "sample_regions": lambda x: tiling.sample_regions(x, spatial_axes=(0, 1)),
    "map_tiles": lambda x: tiling.map_tiles(lambda b: b, x, 2, spatial_axes=(0, 1), dtype=np.float32),
}


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_unknown_chunk_sizes_are_refused_the_same_way_everywhere(name):
    x = _unknown(_noisy((32, 24)))
    assert np.isnan(x.shape[0])
    with pytest.raises(ValueError) as info:
        ENTRY_POINTS[name](x)
    message = str(info.value)
    assert message.startswith("image is a dask array with unknown chunk sizes along axis 0 "), message
    assert "(chunks ((nan, nan, nan, nan), (8, 8, 8)))" in message
    assert "compute_chunk_sizes()" in message and "NaN to integer" not in message


@pytest.mark.parametrize("name", ["tile_chunks", "min_chunks"])
def test_unknown_chunks_given_to_the_chunk_helpers(name):
    chunks = ((np.nan, np.nan), (8, 8))
    with pytest.raises(ValueError, match=r"chunks .*nan, nan.* hold unknown \(NaN\) sizes along axis 0"):
        if name == "tile_chunks":
            tiling.tile_chunks(chunks, (0, 1), 2)
        else:
            tiling.min_chunks(chunks[0], 2)


def test_computed_chunk_sizes_are_accepted():
    a = _noisy((32, 24))
    x = da.from_array(a, chunks=8)
    y = x[x[:, 0] > -1]
    y.compute_chunk_sizes()
    got = nlm.denoise_nl_means(y, 3, 2, h=0.1, sigma=0.05).compute()
    assert np.array_equal(got, nlm.denoise_nl_means(a, 3, 2, h=0.1, sigma=0.05))
    assert nlm.estimate_sigma(y) == nlm.estimate_sigma(a)


def test_many_chunks_are_described_in_one_short_line():
    x = _unknown(_noisy((400, 24)), chunks=(1, 24))
    with pytest.raises(ValueError) as info:
        nlm.estimate_sigma(x)
    message = str(info.value)
    assert "(nan, nan, nan, ... (400 chunks), nan)" in message and len(message) < 300, message


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.lists(st.one_of(st.integers(0, 50), st.just(float("nan"))), min_size=1, max_size=12),
                min_size=1, max_size=4))
def test_check_chunks_refuses_exactly_the_unknown_axes(chunks):
    chunks = tuple(tuple(c) for c in chunks)
    unknown = [ax for ax, c in enumerate(chunks) if any(v != v for v in c)]
    if not unknown:
        assert _check_chunks(chunks) == chunks
        return
    with pytest.raises(ValueError) as info:
        _check_chunks(chunks)
    assert f"along {'axis' if len(unknown) == 1 else 'axes'} {', '.join(map(str, unknown))} " in str(info.value)
    assert _describe_chunks(chunks) in str(info.value)


# --------------------------------------------------------------------------- #
# odd chunks: size 1, smaller than the margin, uneven, one chunk; empty axes
# --------------------------------------------------------------------------- #
ODD = {
    "size 1": (1, 1),
    "smaller than the margin": (3, 2),
    "uneven": ((1, 7, 2, 20), (10, 1, 10)),
    "one chunk": (-1, -1),
}


@pytest.fixture(scope="module")
def image():
    return _noisy()


@pytest.mark.parametrize("chunks", ODD.values(), ids=list(ODD))
def test_odd_chunks_in_every_entry_point(image, chunks):
    x = da.from_array(image, chunks=chunks)
    kw = dict(patch_size=3, patch_distance=2, h=0.1, sigma=0.05)
    assert np.array_equal(nlm.denoise_nl_means(x, **kw).compute(), nlm.denoise_nl_means(image, **kw))
    assert nlm.estimate_sigma(x) == nlm.estimate_sigma(image)
    assert estimate_noise(x).sigma == estimate_noise(image).sigma
    bayes = nlm.denoise_nl_bayes(x, sigma=0.05).compute()
    assert bayes.shape == image.shape and np.isfinite(bayes).all()
    (sample,) = tiling.sample_regions(x, spatial_axes=(0, 1))
    assert np.array_equal(sample, image)
    same = tiling.map_tiles(lambda b: b * 2, x, 4, spatial_axes=(0, 1), dtype=np.float32).compute()
    assert np.array_equal(same, image * 2)


@pytest.mark.parametrize("shape", [(0, 5), (5, 0), (0, 0), (0, 4, 3)])
def test_empty_dask_arrays(shape):
    x = da.zeros(shape, chunks=2, dtype=np.float32)
    calls = [
        lambda: nlm.denoise_nl_means(x, sigma=0.1),
        lambda: nlm.denoise_nl_means(x),
        lambda: nlm.denoise_nl_bayes(x, sigma=0.1, channel_axis=-1 if len(shape) == 3 else None),
        lambda: nlm.estimate_sigma(x),
        lambda: estimate_noise(x),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"image is empty \(shape"):
            call()
    # the generic machinery passes an empty array through
    assert tiling.map_tiles(lambda b: b, x, 2, spatial_axes=(0, 1), dtype=np.float32).compute().shape == shape
    assert tiling.min_chunks((0,), 5) == (0,)
