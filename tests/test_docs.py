"""The README stays a short page for someone deciding whether to use Airlock, and every document that the docs or
the code cite exists in this repository, down to the section."""

from __future__ import annotations

import re
import struct
import tomllib
from pathlib import Path

import pytest

from service.grants.client_configs import client_configs

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CODE_DIRS = ("service", "tests", "bench", "alembic", "webui")
MAX_README_BYTES = 10_240
MAX_PICTURE_WIDTH = 1280

MARKDOWN_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
HTML_IMAGE = re.compile(r"<img\s[^>]*>")
MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CITED_DOC = re.compile(r"\bdocs/[\w/.-]+?\.md(?:#[\w-]+)?")
# Documents that live outside this repository, which comments must not cite (spelled so as not to match this file).
OUTSIDE_CITATIONS = re.compile(
    "DESIGN" + r"(?:\.md)?\s*§|" + "DESIGN" + r"\.md|\breference/[\w-]+\.md|/work/" + "shared"
)


def _code_files() -> list[Path]:
    files = [path for folder in CODE_DIRS for path in (ROOT / folder).rglob("*.py")]
    return [path for path in files if "node_modules" not in path.parts]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.MULTILINE)}


def _png_width(path: Path) -> int:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int(struct.unpack(">I", header[16:20])[0])


def _check_target(source: Path, target: str, base: Path | None = None) -> str | None:
    """Why a relative link or citation in `source` does not resolve (from `base`, else from source's folder)."""
    path_part, _, anchor = target.partition("#")
    document = ((base or source.parent) / path_part).resolve() if path_part else source
    where = f"{source.relative_to(ROOT)} cites {target}"
    if not document.exists():
        return f"{where}: no such file"
    if anchor and document.suffix == ".md" and anchor not in _anchors(document):
        return f"{where}: {document.name} has no section #{anchor}"
    return None


def test_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes; move details to docs/"


def test_readme_shows_one_picture_of_a_sensible_width() -> None:
    text = README.read_text()
    markdown = MARKDOWN_IMAGE.findall(text)
    html = HTML_IMAGE.findall(text)
    assert len(markdown) + len(html) == 1, "the README shows exactly one picture"
    if markdown:
        source, declared = markdown[0], None
    else:
        found = re.search(r'src="([^"]+)"', html[0])
        assert found, html[0]
        source = found.group(1)
        width = re.search(r'width="(\d+)"', html[0])
        declared = int(width.group(1)) if width else None
    picture = ROOT / source
    assert picture.is_file(), f"{source} is missing"
    shown = declared or _png_width(picture)
    assert 320 <= shown <= MAX_PICTURE_WIDTH


def test_readme_keeps_the_two_commands() -> None:
    blocks = "\n".join(re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL))
    commands = {line.split("#")[0].strip() for line in blocks.splitlines()}
    assert {"make demo", "make test"} <= commands


def test_every_make_target_the_readme_names_exists() -> None:
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README.read_text()))
    assert named, "the README names its make targets"
    assert named <= targets, f"not in the Makefile: {sorted(named - targets)}"


def test_readme_states_the_per_test_timeout_in_force() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert f"Each test has {options['timeout']} s" in README.read_text()


def test_readme_shows_every_client_airlock_configures() -> None:
    text = README.read_text()
    clients = [config.title.split(" (")[0] for config in client_configs("http://127.0.0.1:8080/mcp", None)]
    assert clients
    missing = [name for name in clients if f"| {name} |" not in text]
    assert not missing, f"the README's client table lacks {missing}"


def test_docs_cover_what_the_readme_leaves_out() -> None:
    expected = {"architecture", "policies", "slack", "webui", "replicas", "security", "performance"}
    assert expected <= {path.stem for path in DOCS.glob("*.md")}
    readme = README.read_text()
    assert all(f"docs/{name}.md" in readme for name in expected), "the README points to every document"


@pytest.mark.parametrize("document", [README, *sorted(DOCS.glob("*.md"))], ids=lambda p: p.name)
def test_links_in_the_docs_resolve(document: Path) -> None:
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
    targets = [t for t in MARKDOWN_LINK.findall(text) + MARKDOWN_IMAGE.findall(text) if "://" not in t]
    problems = [p for t in targets if (p := _check_target(document, t)) is not None]
    assert not problems, "\n".join(problems)


def test_performance_doc_covers_every_benchmark() -> None:
    text = (DOCS / "performance.md").read_text()
    benchmarks = sorted(path.stem for path in (ROOT / "bench").glob("*_bench.py"))
    assert benchmarks
    assert all(f"bench.{name}" in text for name in benchmarks), benchmarks


def test_code_cites_no_document_outside_this_repo() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _code_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if OUTSIDE_CITATIONS.search(line)
    ]
    assert not found, "cite a document in docs/ instead:\n" + "\n".join(found)


def test_every_document_the_code_cites_exists_with_its_section() -> None:
    cited = [(path, citation) for path in _code_files() for citation in CITED_DOC.findall(path.read_text())]
    assert len(cited) >= 10, "the scan finds the code's citations"
    problems = [p for path, citation in cited if (p := _check_target(path, citation, base=ROOT)) is not None]
    assert not problems, "\n".join(problems)
