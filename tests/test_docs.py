"""The README stays short and starts with the fresh-machine commands, and every
docs page it or the MkDocs navigation names exists (the site itself is built,
strictly, by .ci/run)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

FIRST = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && "
         "nlm denoise --noise speckle samples/camera_speckle04.png camera_denoised.png")
SECOND = ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && '
          "python -m pytest -q")


def test_readme_is_short():
    assert len(README.read_text().splitlines()) <= 300


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert first_block is not None
    # nothing but the title and one sentence before the commands
    assert text.index("```bash") < 200
    commands = [line for line in first_block.group(1).splitlines() if line and not line.startswith("#")]
    assert commands == [FIRST, SECOND]


def _local_links(text):
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if "://" in target or target.startswith("#") or target.startswith("mailto:"):
            continue
        yield target.split("#", 1)[0]


def test_readme_links_exist():
    links = list(_local_links(README.read_text()))
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        assert (ROOT / link).exists(), link


def _nav_pages(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def test_mkdocs_nav_pages_exist():
    yaml = __import__("yaml")  # PyYAML comes with dask
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = list(_nav_pages(config["nav"]))
    assert "cli.md" in pages  # the docstrings point to docs/cli.md
    for page in pages:
        assert (DOCS / page).is_file(), page
    # every page is in the navigation (mkdocs --strict checks this too)
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert on_disk == set(pages)


def test_docs_links_between_pages_exist():
    drawn = {(DOCS / p.uri).resolve() for p in _hook().PLOTS}  # the plots exist in the built site only
    for page in DOCS.rglob("*.md"):
        for link in _local_links(page.read_text()):
            if link:
                target = (page.parent / link).resolve()
                assert target.exists() or target in drawn, (page, link)


# ---------------------------------------------------------------------------------------------------------
# The benchmark plots: drawn at build time by the MkDocs hook docs/hooks/plots.py from the CSV files in
# docs/benchmarks/data/, each a transcription of a table on the benchmark pages.

DATA = DOCS / "benchmarks" / "data"
TABLE_MARKER = re.compile(r"<!-- table-data: data/([\w.-]+\.csv) -->\n\s*\n((?:\|.*\|\n)+)")


def _hook():
    import importlib.util
    import sys

    name = "nlm_docs_plots_hook"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / "plots.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _plot_links():
    """(page, link) for every image link to a plot in the pages."""
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            if "plots/" in target:
                yield page, target


def test_hook_needs_neither_mkdocs_nor_matplotlib_to_import():
    hook = _hook()
    assert hook.PLOTS and hook.DATA == DATA


def test_plot_csvs_exist_and_each_csv_is_drawn():
    hook = _hook()
    names = [p.name for p in hook.PLOTS]
    assert len(names) == len(set(names))
    used = set()
    for plot in hook.PLOTS:
        assert plot.sources, plot.name
        for source in plot.sources:
            assert (DATA / source).is_file(), (plot.name, source)
            used.add(source)
    assert {p.name for p in DATA.glob("*.csv")} == used  # no CSV that no plot reads


def test_every_plot_is_linked_and_every_plot_link_is_drawn():
    hook = _hook()
    drawn = {(DOCS / p.uri).resolve() for p in hook.PLOTS}
    linked = set()
    for page, link in _plot_links():
        target = (page.parent / link).resolve()
        assert target in drawn, (page, link)
        assert not target.exists(), f"{target} is drawn at build time and must not be committed"
        linked.add(target)
    assert linked == drawn


def test_every_plot_renders_from_the_csvs(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib comes with the docs extra")
    hook = _hook()
    written = hook.render_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{p.name}.svg" for p in hook.PLOTS)
    for path in written:
        svg = path.read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>"), path
        assert len(svg) > 5000, path  # axes, labels and lines, not an empty figure
    # the same data draws the same bytes (no date, fixed ids): a rebuild does not change the site
    assert hook.PLOTS[0].render() == written[0].read_bytes()


def _cells(row):
    return [c.strip() for c in row.strip().strip("|").split("|")]


def _value(cell):
    """A table or CSV cell as a number (bold and a trailing x removed), None for n/a, - or empty."""
    cell = cell.replace("**", "").strip()
    if cell in ("", "-", "n/a"):
        return None
    return float(cell[:-1] if cell.endswith("x") else cell)


# tables whose columns are not a PSNR table's (method, label, one column per level): table header -> CSV column;
# the ratio columns are derived (the anchor's time over nlm float32's) and checked against the CSV's times
SPEED_COLUMNS = {
    "speed-kernel.csv": {"case": "case", "nlm f32 (s)": "nlm_f32_s", "nlm f64 (s)": "nlm_f64_s",
                         "skimage fast (s)": "skimage_fast_s", "OpenCV u8 (s)": "opencv_u8_s",
                         "peak mem (x input)": "peak_mem_x_input"},
    "speed-video.csv": {"clip": "clip", "nlm fps": "nlm_fps", "OpenCV Multi fps": "opencv_multi_fps",
                        "ffmpeg nlmeans fps": "ffmpeg_nlmeans_fps", "nlm PSNR": "nlm_psnr",
                        "OpenCV PSNR": "opencv_psnr", "ffmpeg PSNR": "ffmpeg_psnr", "noisy": "noisy_psnr"},
}
SPEED_RATIOS = {"skimage / nlm": "skimage_fast_s", "OpenCV / nlm": "opencv_u8_s"}


def _check_psnr_table(name, header, body, rows):
    levels = [key for key in rows[0] if "=" in key]
    value_cols = [i for i, h in enumerate(header) if i > 0 and h != "Δ"]
    assert [header[i] for i in value_cols] == levels, name
    anchor = None
    for cells, row in zip(body, rows):
        first = row["label"] if row["method"] == "noisy" else f"{row['label']} (`{row['method']}`)"
        assert cells[0] == first, (name, cells[0])
        assert [_value(cells[i]) for i in value_cols] == [float(row[k]) for k in levels], (name, cells[0])
        if "Δ" in header and all(_value(cells[i + 1]) == 0 for i in value_cols):
            anchor = row
    if "Δ" in header:  # Δ = PSNR - the anchor's, from unrounded values: within rounding of the two
        assert anchor is not None, name
        for cells, row in zip(body, rows):
            for i, key in zip(value_cols, levels):
                assert abs(_value(cells[i + 1]) - (float(row[key]) - float(anchor[key]))) <= 0.011, (name, cells[0])


def _check_speed_table(name, header, body, rows):
    columns = SPEED_COLUMNS[name]
    assert set(columns) <= set(header), name
    for cells, row in zip(body, rows):
        for h, col in columns.items():
            cell = cells[header.index(h)]
            if col in ("case", "clip"):
                assert cell == row[col], name
            else:
                assert _value(cell) == _value(row[col]), (name, row[header[0]], h)
        for h, col in SPEED_RATIOS.items():
            if h in header:
                ratio = _value(cells[header.index(h)])
                if ratio is None:
                    assert _value(row[col]) is None, (name, h)
                else:
                    assert ratio == pytest.approx(float(row[col]) / float(row["nlm_f32_s"]), rel=0.01), (name, h)


def test_each_csv_holds_the_figures_of_its_table():
    import csv

    found = {}
    for page in (DOCS / "benchmarks").glob("*.md"):
        for name, table in TABLE_MARKER.findall(page.read_text()):
            assert name not in found, f"{name}: more than one table"
            found[name] = table
    assert set(found) == {p.name for p in DATA.glob("*.csv")}  # every CSV is the data of exactly one table
    for name, table in found.items():
        with open(DATA / name, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        lines = table.strip().splitlines()
        header, body = _cells(lines[0]), [_cells(line) for line in lines[2:]]
        assert len(body) == len(rows), name
        if name in SPEED_COLUMNS:
            _check_speed_table(name, header, body, rows)
        else:
            _check_psnr_table(name, header, body, rows)
