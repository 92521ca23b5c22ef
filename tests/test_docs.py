"""The README stays short and starts with the fresh-machine commands, and every
docs page it or the MkDocs navigation names exists (the site itself is built,
strictly, by .ci/run)."""

import re
from pathlib import Path

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
    for page in DOCS.rglob("*.md"):
        for link in _local_links(page.read_text()):
            if link:
                assert (page.parent / link).resolve().exists(), (page, link)
