"""MkDocs hook: draw the benchmark plots from the CSV files in docs/benchmarks/data/ at build time.

Registered in ``mkdocs.yml`` (``hooks:``). ``on_files`` renders every plot in ``PLOTS`` with matplotlib
(no pyplot, so no global backend: ``Figure`` draws with Agg/SVG directly) and adds it to the site as a
generated file (``File.generated``, MkDocs >= 1.6), so the pages' ``![...](plots/NAME.svg)`` links
validate under ``mkdocs build --strict`` although no image is committed.

The CSV files are transcriptions of the measured tables on the benchmark pages; each such table is
preceded by a ``<!-- table-data: data/NAME.csv -->`` marker and ``tests/test_docs.py`` checks that the table
and its CSV hold the same figures. The plots only ever show what a CSV holds.

Preview without MkDocs: ``python docs/hooks/plots.py OUTDIR`` writes every plot into OUTDIR.
This module imports neither MkDocs nor matplotlib at import time (the tests import it with neither).
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

DOCS = Path(__file__).resolve().parents[1]
DATA = DOCS / "benchmarks" / "data"
#: where the plots go in the site, relative to the docs directory (never on disk)
PLOT_DIR = "benchmarks/plots"


# ---------------------------------------------------------------------------------------------------------
# data


def read_csv(name: str) -> list[dict[str, str]]:
    """The rows of ``docs/benchmarks/data/<name>`` as dicts (header -> cell text)."""
    with open(DATA / name, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def level_columns(rows: list[dict[str, str]]) -> list[tuple[str, float]]:
    """The noise-level columns of a PSNR table (``var=0.01``, ``L=4``) and their values."""
    return [(key, float(key.split("=", 1)[1])) for key in rows[0] if "=" in key]


def _num(text: str) -> float:
    return float(text) if text.strip() else math.nan


# ---------------------------------------------------------------------------------------------------------
# style

_MARKERS = ["o", "^", "v", "D", "P", "X", "<", ">", "*"]
_PALETTE = ["#1f77b4", "#2ca02c", "#17becf", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#bcbd22", "#d62728"]


def _styles(methods: list[str], anchor: str) -> dict[str, dict]:
    """One line style per method: the anchor black and thick, the noisy input grey and dotted, this project's
    methods solid, the others dashed."""
    styles, k = {}, 0
    for m in methods:
        if m == anchor:
            styles[m] = dict(color="black", lw=2.6, marker="s", ms=6, ls="-", zorder=5)
        elif m == "noisy":
            styles[m] = dict(color="0.55", lw=1.2, marker=".", ls=":", zorder=1)
        else:
            styles[m] = dict(color=_PALETTE[k % len(_PALETTE)], lw=1.6, marker=_MARKERS[k % len(_MARKERS)], ms=5,
                             ls="-" if m.startswith("nlm") else "--", zorder=3)
            k += 1
    return styles


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure  # matplotlib only when a plot is drawn

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _svg(fig) -> bytes:
    """The figure as SVG bytes, the same bytes for the same data (no date, fixed ids)."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "nlm-docs", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------
# plots


def psnr_plot(csv_name: str, anchor: str, title: str, xlabel: str,
              x: Callable[[float], float] = lambda v: v, xticks: str = "{:g}") -> bytes:
    """Mean PSNR against the noise level, one line per method (left), and each method's difference to the
    anchor measured in the same run (right; the anchor is the zero line)."""
    rows = read_csv(csv_name)
    levels = level_columns(rows)
    xs = [x(v) for _, v in levels]
    methods = [r["method"] for r in rows]
    if anchor not in methods:
        raise ValueError(f"{csv_name}: no row for the anchor {anchor!r}")
    by_method = {r["method"]: [float(r[key]) for key, _ in levels] for r in rows}
    styles = _styles(methods, anchor)

    fig, (ax, dax) = _figure(10.0, 4.4, ncols=2)
    for r in rows:
        m = r["method"]
        label = r["label"] if len(r["label"]) <= 50 else r["label"].split(" (", 1)[0]  # the key says the rest
        if m != "noisy":
            label += f" ({m})"
        if m == anchor:
            label += " \N{EM DASH} anchor"
        ax.plot(xs, by_method[m], label=label, **styles[m])
        if m != "noisy":
            diff = [a - b for a, b in zip(by_method[m], by_method[anchor])]
            dax.plot(xs, diff, **styles[m])
    for a in (ax, dax):
        a.set_xscale("log")
        a.set_xticks(xs, [xticks.format(v) for v in xs])
        a.minorticks_off()
        a.set_xlabel(xlabel)
        a.grid(True, alpha=0.3)
    ax.set_ylabel("mean PSNR (dB)")
    ax.set_title(title)
    dax.set_ylabel(f"PSNR minus the anchor's, {anchor} (dB)")
    dax.set_title("difference to the anchor (same run)")
    dax.axhline(0.0, color="black", lw=1.0)
    fig.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    fig.set_figheight(4.4 + 0.22 * ((len(rows) + 1) // 2))
    return _svg(fig)


def speed_kernel_plot() -> bytes:
    """Seconds per call for each case and method (left), and the speed-up of the float32 filter against each
    anchor measured in the same run (right)."""
    rows = read_csv("speed-kernel.csv")
    cases = [r["case"].split(" (")[0] for r in rows]
    series = [("nlm_f32_s", "nlm float32", "#1f77b4"), ("nlm_f64_s", "nlm float64", "#aec7e8"),
              ("skimage_fast_s", "scikit-image fast mode (anchor)", "black"),
              ("opencv_u8_s", "OpenCV uint8 (anchor)", "#ff7f0e")]
    fig, (ax, rax) = _figure(10.0, 5.0, ncols=2)
    width = 0.8 / len(series)
    for k, (col, label, color) in enumerate(series):
        pos = [i + (k - (len(series) - 1) / 2) * width for i in range(len(rows))]
        ax.bar(pos, [_num(r[col]) for r in rows], width, label=label, color=color)
    ax.set_yscale("log")
    ax.set_ylabel("seconds per call (median, log scale)")
    ax.set_title("time per call, 2 threads (lower is faster)")

    anchors = [("skimage_fast_s", "scikit-image fast mode / nlm float32", "black"),
               ("opencv_u8_s", "OpenCV uint8 / nlm float32", "#ff7f0e")]
    width = 0.8 / len(anchors)
    for k, (col, label, color) in enumerate(anchors):
        pos = [i + (k - (len(anchors) - 1) / 2) * width for i in range(len(rows))]
        ratios = [_num(r[col]) / float(r["nlm_f32_s"]) for r in rows]
        bars = rax.bar(pos, ratios, width, label=label, color=color)
        rax.bar_label(bars, labels=["" if math.isnan(v) else f"{v:.1f}x" for v in ratios], fontsize="small")
    rax.axhline(1.0, color="0.3", lw=1.0, ls="--", label="parity with the anchor (1x)")
    rax.set_ylabel("anchor's time / nlm float32 time (x)")
    rax.set_title("speed-up of nlm float32 against each anchor (same run)")
    labels = ["\n".join(c.split(" ", 1)) for c in cases]
    for a in (ax, rax):
        a.set_xticks(range(len(rows)), labels, fontsize="small")
        a.set_xlabel("case (7x7 patches, 21x21 window; volume 5^3, 7^3)")
        a.grid(True, axis="y", alpha=0.3)
    rax.set_ylim(0, max(_num(r["skimage_fast_s"]) / float(r["nlm_f32_s"]) for r in rows) * 1.12)
    handles, names = ax.get_legend_handles_labels()
    h2, n2 = rax.get_legend_handles_labels()
    fig.legend(handles + h2, names + n2, loc="outside lower center", ncols=4, fontsize="small", frameon=False)
    return _svg(fig)


def speed_video_plot() -> bytes:
    """Frames per second and PSNR per synthetic clip, nlm against OpenCV's Multi functions (the anchor) and
    ffmpeg's nlmeans, from the single-run rows of the video table."""
    rows = [r for r in read_csv("speed-video.csv") if "median" not in r["clip"]]
    clips = [r["clip"] for r in rows]
    series = [("nlm", "nlm (automatic h)", "#1f77b4"), ("opencv", "OpenCV Multi (oracle h; anchor)", "black"),
              ("ffmpeg", "ffmpeg nlmeans (oracle s, spatial only)", "#ff7f0e")]
    fig, (ax, pax) = _figure(10.0, 4.4, ncols=2)
    width = 0.8 / len(series)
    for k, (key, label, color) in enumerate(series):
        pos = [i + (k - (len(series) - 1) / 2) * width for i in range(len(rows))]
        fps_col = {"nlm": "nlm_fps", "opencv": "opencv_multi_fps", "ffmpeg": "ffmpeg_nlmeans_fps"}[key]
        ax.bar(pos, [_num(r[fps_col]) for r in rows], width, label=label, color=color)
        pax.bar(pos, [_num(r[f"{key}_psnr"]) for r in rows], width, color=color)
    pax.plot(range(len(rows)), [_num(r["noisy_psnr"]) for r in rows], ls="none", marker="_", ms=30,
             color="0.5", mew=2, label="noisy input")
    ax.set_ylabel("frames per second (higher is faster)")
    ax.set_title("speed, 512x512 clips, 5 frames (loaded machine)")
    pax.set_ylabel("PSNR (dB)")
    pax.set_title("quality of the same runs")
    pax.set_ylim(15, None)
    for a in (ax, pax):
        a.set_xticks(range(len(rows)), clips, fontsize="small")
        a.set_xlabel("clip (7x7 patches, 21x21 window)")
        a.grid(True, axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    h2, l2 = pax.get_legend_handles_labels()
    fig.legend(handles + h2, labels + l2, loc="outside lower center", ncols=4, fontsize="small", frameon=False)
    return _svg(fig)


class Plot(NamedTuple):
    """One generated plot: its name in the site (``benchmarks/plots/<name>.svg``), the CSV files it reads and
    the function that draws it."""

    name: str
    sources: tuple[str, ...]
    render: Callable[[], bytes]

    @property
    def uri(self) -> str:
        return f"{PLOT_DIR}/{self.name}.svg"


def _sigma255(var: float) -> float:
    return 255.0 * math.sqrt(var)


PLOTS: tuple[Plot, ...] = (
    Plot("psnr-speckle", ("psnr-speckle.csv",),
         lambda: psnr_plot("psnr-speckle.csv", "skimage-oracle",
                           "speckle y = x + x n (clipped), 6 images", "noise variance var of n (log scale)")),
    Plot("psnr-gaussian", ("psnr-gaussian.csv",),
         lambda: psnr_plot("psnr-gaussian.csv", "bm3d-true", "additive Gaussian noise (clipped), 6 images",
                           "noise standard deviation sigma (of 255, log scale)", x=_sigma255, xticks="{:.0f}")),
    Plot("psnr-gamma", ("psnr-gamma.csv",),
         lambda: psnr_plot("psnr-gamma.csv", "bm3d-true", "SAR intensity speckle (gamma), 6 images",
                           "looks L (log scale; more looks = less noise)")),
    Plot("psnr-speckle-bayes", ("psnr-speckle-bayes.csv",),
         lambda: psnr_plot("psnr-speckle-bayes.csv", "bm3d-oracle", "speckle y = x + x n (clipped), NL-Bayes",
                           "noise variance var of n (log scale)")),
    Plot("speed-kernel", ("speed-kernel.csv",), speed_kernel_plot),
    Plot("speed-video", ("speed-video.csv",), speed_video_plot),
)


def render_all(out_dir: str | Path) -> list[Path]:
    """Write every plot of ``PLOTS`` into ``out_dir`` (``<name>.svg``); returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in PLOTS:
        path = out / f"{plot.name}.svg"
        path.write_bytes(plot.render())
        written.append(path)
    return written


# ---------------------------------------------------------------------------------------------------------
# the MkDocs event


def on_files(files, config):
    """Add every plot to the site as a generated file (drawn now, from the CSV files)."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise PluginError("docs/hooks/plots.py draws the benchmark plots with matplotlib: "
                          'pip install -e ".[docs]"') from exc
    for plot in PLOTS:
        if files.get_file_from_path(plot.uri) is not None:
            raise PluginError(f"docs/{plot.uri} is drawn at build time by docs/hooks/plots.py; "
                              "remove the file from docs/ (generated images are not committed)")
        files.append(File.generated(config, plot.uri, content=plot.render()))
    return files


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/hooks/plots.py OUTDIR")
    for p in render_all(sys.argv[1]):
        print(p)
