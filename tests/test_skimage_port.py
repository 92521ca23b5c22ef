"""scikit-image v0.26's own tests of ``denoise_nl_means`` and ``estimate_sigma``,
run against nlm.

Ported from scikit-image v0.26.0, ``tests/skimage/restoration/test_denoise.py``
(https://github.com/scikit-image/scikit-image/blob/v0.26.0/tests/skimage/restoration/test_denoise.py).
Copyright 2009-2022 the scikit-image team; BSD-3-Clause license:

    Redistribution and use in source and binary forms, with or without
    modification, are permitted provided that the following conditions are
    met: (1) Redistributions of source code must retain the above copyright
    notice, this list of conditions and the following disclaimer.
    (2) Redistributions in binary form must reproduce the above copyright
    notice, this list of conditions and the following disclaimer in the
    documentation and/or other materials provided with the distribution.
    (3) Neither the name of the copyright holder nor the names of its
    contributors may be used to endorse or promote products derived from
    this software without specific prior written permission.

    THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS
    IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT LIMITED TO,
    THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A PARTICULAR
    PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT HOLDER OR
    CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL, SPECIAL,
    EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT LIMITED TO,
    PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE, DATA, OR
    PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY THEORY OF
    LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT (INCLUDING
    NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE OF THIS
    SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

Every test of those two functions is here, in the original order, with the
original code, except for these adaptations (each marked ``# nlm:`` below):

1. ``restoration`` is a namespace holding nlm's ``denoise_nl_means`` and
   ``estimate_sigma`` instead of ``skimage.restoration``; the module's test
   images (``astro``, ``astro_gray``) are built as in the original.
2. The global NumPy seed (``np.random.seed(1234)``, set once at import in the
   original, so results depended on test order) is reset before every test.
3. ``test_denoise_nl_means_4d`` and ``test_denoise_nl_means_4d_multichannel``
   run unchanged (4-D, issue 13).
4. ``test_denoise_nl_means_wrong_dimension``: nlm supports 1-D signals,
   1-D + channels, 3-D + channels, 4-D (+ channels) and 5-D (with either
   ``fast_mode``: one algorithm serves both), which scikit-image refuses in
   part; those cases check that the call runs instead of raising.  A 0-D
   array still raises ``nlm.UnsupportedDimensionError``, a
   ``NotImplementedError``.
5. The ``xfail_without_pywt`` marks of the ``estimate_sigma`` tests are
   dropped: nlm's estimator needs no PyWavelets.
"""

import types

import numpy as np
import pytest
from numpy.testing import assert_array_almost_equal, assert_array_equal
from skimage import color, data, img_as_float
from skimage.metrics import peak_signal_noise_ratio

import nlm

# nlm: (1) nlm's functions in place of skimage.restoration
restoration = types.SimpleNamespace(denoise_nl_means=nlm.denoise_nl_means, estimate_sigma=nlm.estimate_sigma)

astro = img_as_float(data.astronaut()[:128, :128])
astro_gray = color.rgb2gray(astro)
# Make sure that all tests below that rely on 0-1 range are valid:
assert np.max(astro_gray) <= 1.0


@pytest.fixture(autouse=True)
def _seed():
    # nlm: (2) the original seeds once, at import
    np.random.seed(1234)


@pytest.mark.parametrize('fast_mode', [False, True])
def test_denoise_nl_means_2d(fast_mode):
    img = np.zeros((40, 40))
    img[10:-10, 10:-10] = 1.0
    sigma = 0.3
    img += sigma * np.random.standard_normal(img.shape)
    img_f32 = img.astype('float32')
    for s in [sigma, 0]:
        denoised = restoration.denoise_nl_means(
            img, 7, 5, 0.2, fast_mode=fast_mode, channel_axis=None, sigma=s
        )
        # make sure noise is reduced
        assert img.std() > denoised.std()

        denoised_f32 = restoration.denoise_nl_means(
            img_f32, 7, 5, 0.2, fast_mode=fast_mode, channel_axis=None, sigma=s
        )
        # make sure noise is reduced
        assert img.std() > denoised_f32.std()

        # Check single precision result
        assert np.allclose(denoised_f32, denoised, atol=1e-2)


@pytest.mark.parametrize('fast_mode', [False, True])
@pytest.mark.parametrize('n_channels', [2, 3, 6])
@pytest.mark.parametrize('dtype', ['float64', 'float32'])
def test_denoise_nl_means_2d_multichannel(fast_mode, n_channels, dtype):
    # reduce image size because nl means is slow
    img = np.copy(astro[:50, :50])
    img = np.concatenate(
        (img,) * 2,
    )  # 6 channels
    img = img.astype(dtype)

    # add some random noise
    sigma = 0.1
    imgn = img + sigma * np.random.standard_normal(img.shape)
    imgn = np.clip(imgn, 0, 1)
    imgn = imgn.astype(dtype)

    for s in [sigma, 0]:
        psnr_noisy = peak_signal_noise_ratio(
            img[..., :n_channels], imgn[..., :n_channels]
        )
        denoised = restoration.denoise_nl_means(
            imgn[..., :n_channels],
            3,
            5,
            h=0.75 * sigma,
            fast_mode=fast_mode,
            channel_axis=-1,
            sigma=s,
        )
        psnr_denoised = peak_signal_noise_ratio(
            denoised[..., :n_channels], img[..., :n_channels]
        )

        # make sure noise is reduced
        assert psnr_denoised > psnr_noisy


@pytest.mark.parametrize('fast_mode', [False, True])
@pytest.mark.parametrize('dtype', ['float64', 'float32'])
def test_denoise_nl_means_3d(fast_mode, dtype):
    img = np.zeros((12, 12, 8), dtype=dtype)
    img[5:-5, 5:-5, 2:-2] = 1.0
    sigma = 0.3
    imgn = img + sigma * np.random.standard_normal(img.shape)
    imgn = imgn.astype(dtype)
    psnr_noisy = peak_signal_noise_ratio(img, imgn)
    for s in [sigma, 0]:
        denoised = restoration.denoise_nl_means(
            imgn, 3, 4, h=0.75 * sigma, fast_mode=fast_mode, channel_axis=None, sigma=s
        )
        # make sure noise is reduced
        assert peak_signal_noise_ratio(img, denoised) > psnr_noisy


@pytest.mark.parametrize('fast_mode', [False, True])
@pytest.mark.parametrize('dtype', ['float64', 'float32', 'float16'])
@pytest.mark.parametrize('channel_axis', [0, -1])
def test_denoise_nl_means_multichannel(fast_mode, dtype, channel_axis):
    # for true 3D data, 3D denoising is better than denoising as 2D+channels

    # synthetic 3d volume
    img = data.binary_blobs(length=32, n_dim=3, rng=5)
    img = img[:, :24, :16].astype(dtype, copy=False)

    sigma = 0.2
    rng = np.random.default_rng(5)
    imgn = img + sigma * rng.standard_normal(img.shape)
    imgn = imgn.astype(dtype)

    # test 3D denoising (channel_axis = None)
    denoised_ok_multichannel = restoration.denoise_nl_means(
        imgn.copy(),
        3,
        2,
        h=0.6 * sigma,
        sigma=sigma,
        fast_mode=fast_mode,
        channel_axis=None,
    )

    # set a channel axis: one dimension is (incorrectly) considered "channels"
    imgn = np.moveaxis(imgn, -1, channel_axis)
    denoised_wrong_multichannel = restoration.denoise_nl_means(
        imgn.copy(),
        3,
        2,
        h=0.6 * sigma,
        sigma=sigma,
        fast_mode=fast_mode,
        channel_axis=channel_axis,
    )
    denoised_wrong_multichannel = np.moveaxis(
        denoised_wrong_multichannel, channel_axis, -1
    )

    img = img.astype(denoised_wrong_multichannel.dtype)
    psnr_wrong = peak_signal_noise_ratio(img, denoised_wrong_multichannel)
    psnr_ok = peak_signal_noise_ratio(img, denoised_ok_multichannel)
    assert psnr_ok > psnr_wrong


def test_denoise_nl_means_4d():  # nlm: (3)
    rng = np.random.default_rng(5)
    img = np.zeros((10, 10, 8, 5))
    img[2:-2, 2:-2, 2:-2, :2] = 0.5
    img[2:-2, 2:-2, 2:-2, 2:] = 1.0
    sigma = 0.3
    imgn = img + sigma * rng.standard_normal(img.shape)

    nlmeans_kwargs = dict(
        patch_size=3, patch_distance=2, h=0.3 * sigma, sigma=sigma, fast_mode=True
    )

    psnr_noisy = peak_signal_noise_ratio(img, imgn, data_range=1.0)

    # denoise by looping over 3D slices
    denoised_3d = np.zeros_like(imgn)
    for ch in range(img.shape[-1]):
        denoised_3d[..., ch] = restoration.denoise_nl_means(
            imgn[..., ch], channel_axis=None, **nlmeans_kwargs
        )
    psnr_3d = peak_signal_noise_ratio(img, denoised_3d, data_range=1.0)
    assert psnr_3d > psnr_noisy

    # denoise as 4D
    denoised_4d = restoration.denoise_nl_means(
        imgn, channel_axis=None, **nlmeans_kwargs
    )
    psnr_4d = peak_signal_noise_ratio(img, denoised_4d, data_range=1.0)
    assert psnr_4d > psnr_3d

    # denoise as 3D + channels instead
    denoised_3dmc = restoration.denoise_nl_means(
        imgn, channel_axis=-1, **nlmeans_kwargs
    )
    psnr_3dmc = peak_signal_noise_ratio(img, denoised_3dmc, data_range=1.0)
    assert psnr_3dmc > psnr_3d


def test_denoise_nl_means_4d_multichannel():  # nlm: (3)
    img = np.zeros((8, 8, 8, 4, 4))
    img[2:-2, 2:-2, 2:-2, 1:-1, :] = 1.0
    sigma = 0.3
    imgn = img + sigma * np.random.randn(*img.shape)

    psnr_noisy = peak_signal_noise_ratio(img, imgn, data_range=1.0)

    denoised_4dmc = restoration.denoise_nl_means(
        imgn, 3, 3, h=0.35 * sigma, fast_mode=True, channel_axis=-1, sigma=sigma
    )
    psnr_4dmc = peak_signal_noise_ratio(img, denoised_4dmc, data_range=1.0)
    assert psnr_4dmc > psnr_noisy


def test_denoise_nl_means_wrong_dimension():
    # 1D not implemented
    # nlm: (4) 1-D, 1-D + channels and 3-D + channels (any fast_mode) run
    img = np.zeros((5,))
    assert restoration.denoise_nl_means(img, channel_axis=None).shape == img.shape

    img = np.zeros((5, 3))
    assert restoration.denoise_nl_means(img, channel_axis=-1).shape == img.shape

    # 3D + channels only for fast mode
    img = np.zeros((5, 5, 5, 5))
    assert restoration.denoise_nl_means(img, channel_axis=-1, fast_mode=False).shape == img.shape

    # 4D only for fast mode
    # nlm: (4) 4-D, 4-D + channels and 5-D run with either fast_mode
    img = np.zeros((5, 5, 5, 5))
    assert restoration.denoise_nl_means(img, channel_axis=None, fast_mode=False).shape == img.shape

    # 4D + channels only for fast mode
    img = np.zeros((5, 5, 5, 5, 5))
    assert restoration.denoise_nl_means(img, channel_axis=-1, fast_mode=False).shape == img.shape

    # 5D not implemented
    img = np.zeros((5, 5, 5, 5, 5))
    assert restoration.denoise_nl_means(img, 3, 1, channel_axis=None).shape == img.shape

    # nlm: (4) no spatial dimension at all
    with pytest.raises(NotImplementedError):
        restoration.denoise_nl_means(np.array(3.0), channel_axis=None)


@pytest.mark.parametrize('fast_mode', [False, True])
@pytest.mark.parametrize('dtype', ['float64', 'float32'])
def test_no_denoising_for_small_h(fast_mode, dtype):
    img = np.zeros((40, 40))
    img[10:-10, 10:-10] = 1.0
    img += 0.3 * np.random.standard_normal(img.shape)
    img = img.astype(dtype)
    # very small h should result in no averaging with other patches
    denoised = restoration.denoise_nl_means(
        img, 7, 5, 0.01, fast_mode=fast_mode, channel_axis=None
    )
    assert np.allclose(denoised, img)
    denoised = restoration.denoise_nl_means(
        img, 7, 5, 0.01, fast_mode=fast_mode, channel_axis=None
    )
    assert np.allclose(denoised, img)


@pytest.mark.parametrize('fast_mode', [False, True])
def test_denoise_nl_means_2d_dtype(fast_mode):
    img = np.zeros((40, 40), dtype=int)
    img_f32 = img.astype('float32')
    img_f64 = img.astype('float64')

    assert restoration.denoise_nl_means(img, fast_mode=fast_mode).dtype == 'float64'

    assert (
        restoration.denoise_nl_means(img_f32, fast_mode=fast_mode).dtype
        == img_f32.dtype
    )

    assert (
        restoration.denoise_nl_means(img_f64, fast_mode=fast_mode).dtype
        == img_f64.dtype
    )


@pytest.mark.parametrize('fast_mode', [False, True])
def test_denoise_nl_means_3d_dtype(fast_mode):
    img = np.zeros((12, 12, 8), dtype=int)
    img_f32 = img.astype('float32')
    img_f64 = img.astype('float64')

    assert (
        restoration.denoise_nl_means(img, patch_distance=2, fast_mode=fast_mode).dtype
        == 'float64'
    )

    assert (
        restoration.denoise_nl_means(
            img_f32, patch_distance=2, fast_mode=fast_mode
        ).dtype
        == img_f32.dtype
    )

    assert (
        restoration.denoise_nl_means(
            img_f64, patch_distance=2, fast_mode=fast_mode
        ).dtype
        == img_f64.dtype
    )


# nlm: (5) no xfail_without_pywt marks on these three tests
def test_estimate_sigma_gray():
    rstate = np.random.default_rng(1234)
    # astronaut image
    img = astro_gray.copy()
    sigma = 0.1
    # add noise to astronaut
    img += sigma * rstate.standard_normal(img.shape)

    sigma_est = restoration.estimate_sigma(img, channel_axis=None)
    assert_array_almost_equal(sigma, sigma_est, decimal=2)


def test_estimate_sigma_masked_image():
    # Verify computation on an image with a large, noise-free border.
    # (zero regions will be masked out by _sigma_est_dwt to avoid returning
    #  sigma = 0)
    rstate = np.random.default_rng(1234)
    # uniform image
    img = np.zeros((128, 128))
    center_roi = (slice(32, 96), slice(32, 96))
    img[center_roi] = 0.8
    sigma = 0.1

    img[center_roi] = sigma * rstate.standard_normal(img[center_roi].shape)

    sigma_est = restoration.estimate_sigma(img, channel_axis=None)
    assert_array_almost_equal(sigma, sigma_est, decimal=1)


@pytest.mark.parametrize('channel_axis', [0, 1, 2, -1])
def test_estimate_sigma_color(channel_axis):
    rstate = np.random.default_rng(1234)
    # astronaut image
    img = astro.copy()
    sigma = 0.1
    # add noise to astronaut
    img += sigma * rstate.standard_normal(img.shape)
    img = np.moveaxis(img, -1, channel_axis)

    sigma_est = restoration.estimate_sigma(
        img, channel_axis=channel_axis, average_sigmas=True
    )
    assert_array_almost_equal(sigma, sigma_est, decimal=2)

    sigma_list = restoration.estimate_sigma(
        img, channel_axis=channel_axis, average_sigmas=False
    )
    assert_array_equal(len(sigma_list), img.shape[channel_axis])
    assert_array_almost_equal(sigma_list[0], sigma_est, decimal=2)

    if channel_axis % img.ndim == 2:
        # default channel_axis=None should raise a warning about last axis size
        with pytest.warns(
            UserWarning,
            match="image is size 3 on the last axis, but channel_axis is None",
        ):
            restoration.estimate_sigma(img)
