"""The product's text stands on its own: the package, the README and docs/ point only inside the
repository; every docs page (and section) that the package or the tests cite, and every link of
the README and docs/, exists; the package names the survey it means and states measurements by
the machine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# Pointers to files that live outside the repository. Spelt in pieces, so that this file does not
# match the patterns it checks for.
OUTSIDE = re.compile(
    "|".join(
        [
            r"\.\./" + "shared",  # the sibling folder of the checkout
            "shared" + "/",  # the same folder by an absolute path
            "DESIGN" + r"\.md",
            "paper" + "-figures",
            "wave2" + "-figures",
        ]
    ),
    re.IGNORECASE,
)


def _text_files(folder: Path) -> list[Path]:
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in {".pyc", ".png"}:
            out.append(p)
    return out


PRODUCT = [*_text_files(ROOT / "cnnlab"), ROOT / "README.md", *_text_files(DOCS)]
SOURCES = [p for p in PRODUCT if p.suffix == ".py"]
CITING = [*SOURCES, *sorted((ROOT / "tests").rglob("*.py"))]  # tests cite docs/ too


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def _read(p: Path) -> str:
    return p.read_text(encoding="utf-8", errors="replace")


def slug(heading: str) -> str:
    """A markdown heading's anchor, as GitHub makes it."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*$", _read(page), re.M)}


@pytest.mark.parametrize("path", PRODUCT, ids=_rel)
def test_no_pointer_outside_the_repository(path):
    hits = [
        f"{_rel(path)}:{n}: {line.strip()}"
        for n, line in enumerate(_read(path).splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, "points outside the repository (cite docs/... or the paper):\n" + "\n".join(
        hits
    )


DOC_CITATION = re.compile(r"\bdocs/([\w\-/]+\.md)(?:#([\w\-]+))?")


def _cited_docs() -> list[tuple[str, str, str | None]]:
    cited = []
    for p in CITING:
        for m in DOC_CITATION.finditer(_read(p)):
            cited.append((_rel(p), m.group(1), m.group(2)))
    return cited


def test_the_package_cites_the_docs():
    """The check below would pass vacuously if the pattern found nothing."""
    assert any(page == "provenance.md" for _, page, _ in _cited_docs())


@pytest.mark.parametrize("source,page,anchor", _cited_docs())
def test_every_docs_page_the_code_cites_exists(source, page, anchor):
    target = DOCS / page
    assert target.is_file(), f"{source} cites docs/{page}, which does not exist"
    if anchor:
        assert anchor in anchors(target), (
            f"{source} cites docs/{page}#{anchor}; that page has no such section "
            f"(its sections: {sorted(anchors(target))})"
        )


MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _links() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    return [(_rel(p), link) for p in pages for link in MD_LINK.findall(_read(p))]


@pytest.mark.parametrize("page,link", _links())
def test_every_link_of_the_readme_and_docs_resolves(page, link):
    if re.match(r"[a-z]+://", link):
        return  # a web address: not checked offline
    path, _, anchor = link.partition("#")
    here = ROOT / page
    target = (here.parent / path).resolve() if path else here
    assert target.is_relative_to(ROOT), f"{page} links outside the repository: {link}"
    assert target.exists(), f"{page} links to {link}, which does not exist"
    if anchor and target.suffix == ".md":
        assert anchor in anchors(target), f"{page} links to {link}: no such section"


def test_the_survey_is_named_where_the_package_mentions_it():
    """A docstring or help string says whose survey: X. Zhang, "Recent advances in CNN model
    research" (or it names the paper actually meant)."""
    bare = []
    for p in SOURCES:
        text = _read(p)
        for m in re.finditer(r"\b[Ss]urvey(?!\w)", text):  # prose, not SURVEY_LEVELS
            before = text[max(0, m.start() - 8) : m.start()]
            if "Zhang's" not in before:
                line = text.count("\n", 0, m.start()) + 1
                bare.append(f"{_rel(p)}:{line}")
    assert not bare, (
        "an unnamed 'survey' (write X. Zhang's survey, or the paper meant): " + ", ".join(bare)
    )


@pytest.mark.parametrize("path", PRODUCT, ids=_rel)
def test_measurements_name_the_machine_not_the_project(path):
    anecdote = re.compile(r"this project's|\bthis VM\b|\bour VM\b", re.I)
    hits = [
        f"{_rel(path)}:{n}"
        for n, line in enumerate(_read(path).splitlines(), 1)
        if anecdote.search(line)
    ]
    assert not hits, "state the machine (e.g. 'an x86-64 VM with 2 vCPUs'): " + ", ".join(hits)
