"""The parameters of one ``nlm denoise`` run, as small frozen dataclasses.

The command (:mod:`nlm.cli.denoise`) checks the options and builds them once;
the jobs read them by name instead of taking a dozen positional arguments.
They pickle, so a cluster task takes them as they are.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class FilterParams:
    """What the filter is asked to do (``None``: automatic / estimated).

    ``method`` is ``"means"`` or ``"bayes"``; ``noise`` one of the noise
    models or ``"auto"``; ``patch_size``/``patch_distance`` as given (an int
    or a tuple); ``h``, ``sigma`` and ``looks`` in the image's stored units.
    """

    method: str = "means"
    noise: str = "gaussian"
    patch_size: object = None
    patch_distance: object = None
    h: float | None = None
    sigma: float | None = None
    looks: float | None = None
    #: per-pixel noise map file (or "auto"), mask file, where to write the noise map
    sigma_map: str | None = None
    mask: str | None = None
    noise_map_out: str | None = None
    #: "cpu", "cuda" or "auto" (non-local means on in-memory images; see nlm.ops._cuda_device)
    device: str = "cpu"


@dataclass(frozen=True)
class ScaleParams:
    """How large inputs run: the memory budget, tiles, a cluster, the pixel limit."""

    memory_limit: int
    tile_size: int = 2048
    cluster: bool = False
    threads_per_tile: int | None = None
    max_pixels: int | None = None


@dataclass(frozen=True)
class VideoParams:
    """The options of a video job (``--temporal-radius``, ``--time-axis``, ``--allow-truncated``).

    ``patch_size``/``patch_distance`` are the options as given: a video has
    defaults of its own, and 3 values (``t,y,x``) there.
    """

    temporal_radius: int | None = None
    patch_size: object = None
    patch_distance: object = None
    time_axis: int | None = None
    allow_truncated: bool = False


@dataclass(frozen=True)
class Outputs:
    """Where and how results are written, and what is printed."""

    output_dir: str | None = None
    suffix: str | None = None
    ext: str | None = None
    volume: bool = False
    overwrite: bool = False
    quiet: bool = False
    verbose: bool = False
