"""Helpers of the tile-by-tile command-line tests (tests/test_scale_cli.py, tests/test_bayes_tiled_cli.py)."""

import numpy as np
import tifffile
from click.testing import CliRunner

import cli


def run(*args):
    """``nlm`` in-process with these arguments (exceptions raised, not caught)."""
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def noisy_image(shape, dtype=np.uint8, seed=0):
    """A two-level pattern with clipped Gaussian noise (0.08), grey or ``(H, W, C)``, in ``dtype``'s range."""
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    clean = np.where((np.sin(x / 9.0) * np.cos(y / 13.0)) > 0, 0.7, 0.25)
    if len(shape) == 3:
        clean = np.stack([clean * (1 - 0.15 * c) for c in range(shape[2])], axis=-1)
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1)
    if np.dtype(dtype).kind == "f":
        return noisy.astype(dtype)
    return np.rint(noisy * np.iinfo(dtype).max).astype(dtype)


def same(a, b):
    """Bit-identical: the tiles' kernels add every sum in the whole image's order."""
    assert a.shape == b.shape and a.dtype == b.dtype
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), float(np.nanmax(np.abs(a.astype(np.float64) - b)))


def in_memory(tmp_path, src, *opts):
    """The in-memory result of ``nlm denoise SRC ref.tif OPTS`` (asserted not to go tile by tile)."""
    ref = tmp_path / "ref.tif"
    r = run("denoise", src, ref, "-q", *opts)
    assert r.exit_code == 0, r.output
    assert "tile by tile" not in r.output
    return tifffile.imread(ref)
