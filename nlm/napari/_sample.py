"""Sample data of the napari plugin: the project's noisy samples, made on demand.

The images in the repository's ``samples/`` folder are not package data; the
functions here rebuild them bit for bit from the images bundled with
scikit-image (a dependency), with the recipes of ``samples/README.md``, so an
installed package offers them from napari's *File > Open Sample > nlm* menu
without shipping any file.  The volume is a seeded synthetic one (scikit-image
bundles no 3-D image; its ``cells3d`` is a download).

Each function returns napari "layer data tuples" ``(data, kwargs, "image")``:
the noisy image, then the clean one, hidden, to compare against.  Nothing here
imports napari.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LayerData = tuple[np.ndarray, dict[str, Any], str]


def _speckle(clean: np.ndarray) -> np.ndarray:
    """scikit-image's speckle (``y = x + x n``, ``n ~ N(0, 0.04)``, seed 0) as uint8: ``nlm noise --var 0.04``."""
    from skimage.util import img_as_ubyte, random_noise

    return img_as_ubyte(random_noise(clean, mode="speckle", var=0.04, rng=0))


def _astronaut256() -> np.ndarray:
    import skimage.data
    from skimage.transform import resize

    small = resize(skimage.data.astronaut(), (256, 256), order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _pair(noisy: np.ndarray, clean: np.ndarray, name: str, **kwargs: Any) -> list[LayerData]:
    return [
        (noisy, {"name": f"{name} noisy", **kwargs}, "image"),
        (clean, {"name": f"{name} clean", "visible": False, **kwargs}, "image"),
    ]


def camera_speckle() -> list[LayerData]:
    """``samples/camera_speckle04.png`` (512x512 uint8, speckle var 0.04) and ``samples/camera.png``."""
    import skimage.data

    clean = skimage.data.camera()
    return _pair(_speckle(clean), clean, "camera speckle")


def camera_gaussian() -> list[LayerData]:
    """``samples/camera.png`` with Gaussian noise, sigma 10 % of the range (seed 0), float32 in [0, 1], unclipped."""
    import skimage.data

    clean = skimage.data.camera().astype(np.float32) / np.float32(255)
    rng = np.random.default_rng(0)
    noisy = clean + np.float32(0.1) * rng.standard_normal(clean.shape, dtype=np.float32)
    return _pair(noisy, clean, "camera gaussian")


def astronaut_speckle() -> list[LayerData]:
    """``samples/astronaut256_speckle04.png`` (256x256 RGB uint8) and ``samples/astronaut256.png``."""
    clean = _astronaut256()
    return _pair(_speckle(clean), clean, "astronaut speckle", rgb=True)


def blobs_clean(shape: tuple[int, int, int] = (48, 128, 128)) -> np.ndarray:
    """A smooth synthetic volume, float32 in [0.1, 0.9]: 3-D binary blobs (seed 0) blurred by a Gaussian of 2 voxels."""
    from skimage.data import binary_blobs
    from skimage.filters import gaussian

    side = max(shape)
    blobs = binary_blobs(length=side, n_dim=3, volume_fraction=0.3, blob_size_fraction=0.08, rng=0)
    smooth = gaussian(blobs[: shape[0], : shape[1], : shape[2]].astype(np.float32), sigma=2)
    lo, hi = float(smooth.min()), float(smooth.max())
    return (0.1 + 0.8 * (smooth - lo) / (hi - lo)).astype(np.float32)


def blobs_volume() -> list[LayerData]:
    """A 48x128x128 synthetic volume with Gaussian noise, sigma 6 % of the range (seed 0), float32, unclipped."""
    clean = blobs_clean()
    rng = np.random.default_rng(0)
    noisy = clean + np.float32(0.06) * rng.standard_normal(clean.shape, dtype=np.float32)
    return _pair(noisy, clean, "blobs volume")
