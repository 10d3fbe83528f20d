"""The docs a newcomer starts from stay true to the tree: docs/architecture.md's layout block names
every package of vextrus_nb, and every relative link in README.md and docs/ leads to a file (and,
into a markdown page, a heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "vextrus_nb"
ARCHITECTURE = REPO / "docs" / "architecture.md"
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]

FENCED_BLOCK = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
# [text](target) or [text](target "title"), images included; the docs use no reference-style links.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # http:, https:, mailto:: not a local file
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


def _packages() -> list[Path]:
    """Every directory under vextrus_nb/ that Python imports as a package, the root included."""
    return sorted(init.parent for init in PACKAGE.rglob("__init__.py"))


def _layout_block() -> str:
    """The first fenced block of architecture.md's `## Layout` section."""
    text = ARCHITECTURE.read_text()
    _, found, section = text.partition("\n## Layout\n")
    assert found, "docs/architecture.md has no '## Layout' section"
    block = re.search(r"^```[^\n]*\n(.*?)^```", section.split("\n## ", 1)[0], re.MULTILINE | re.DOTALL)
    assert block, "docs/architecture.md's '## Layout' section has no fenced layout block"
    return block.group(1)


def _named_in(block: str, package: Path) -> bool:
    """Whether the block names the package by its path, `vextrus_nb/resilience/chaos/` or (on an
    indented or grouped line) `resilience/chaos/`. The lookbehind keeps `runbooks/ha/` from
    counting as `ha/`: a path must start the word it is in."""
    relative = package.relative_to(PACKAGE).as_posix()
    path = "vextrus_nb/" if relative == "." else f"(?:vextrus_nb/)?{re.escape(relative)}/"
    return re.search(rf"(?<![\w./-]){path}", block) is not None


@pytest.mark.parametrize("package", _packages(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_package_is_in_the_architecture_layout(package: Path) -> None:
    assert _named_in(_layout_block(), package), (
        f"{package.relative_to(REPO).as_posix()}/ is missing from the layout block of docs/architecture.md"
    )


def test_the_layout_check_tells_a_package_from_a_namesake() -> None:
    """The check itself: `runbooks/ha/` does not stand for the ha/ engine, nor prose for a path."""
    engine = PACKAGE / "ha"
    assert _named_in("vextrus_nb/ha/   the engine", engine)
    assert _named_in("  ha/   the engine, on an indented line", engine)
    assert not _named_in("vextrus_nb/runbooks/ha/   the steps", engine)
    assert not _named_in("runbooks/ha/ and the high availability engines", engine)
    assert not _named_in("vextrus_nb/hardening/", engine)


def _prose(text: str) -> str:
    """The text without code: a `[x](y)` or a `# line` inside a code block is not markdown."""
    return CODE_SPAN.sub("", FENCED_BLOCK.sub("", text))


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda span: span.group(0).strip("`"), heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for heading in HEADING.findall(FENCED_BLOCK.sub("", page.read_text())):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _broken_links(page: Path, root: Path = REPO) -> list[str]:
    broken: list[str] = []
    for target in LINK.findall(_prose(page.read_text())):
        if not target or SCHEME.match(target):
            continue
        path, _, fragment = target.partition("#")
        path = path.partition("?")[0]
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_relative_to(root):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in _anchors(resolved):
            broken.append(f"{target}: no heading '#{fragment}' in {resolved.relative_to(root)}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_leads_to_a_file_that_exists(page: Path) -> None:
    assert _broken_links(page) == []


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    """The check itself, on a tree of its own: links that break are named, the others pass."""
    root = tmp_path.resolve()
    (root / "docs").mkdir()
    (root / "docs" / "other.md").write_text("# Other\n\n## In JupyterLab: the on-call engineer\n")
    page = root / "docs" / "page.md"
    page.write_text(
        "# A page\n\n"
        "[fine](other.md#in-jupyterlab-the-on-call-engineer) [gone](no-such-page.md)\n"
        "[anchor](other.md#no-such) [up](../../elsewhere.md) [web](https://example.com) [here](#a-page)\n\n"
        "```\n[in code](not-a-link.md)\n```\n"
    )
    assert _broken_links(page, root) == [
        "no-such-page.md: no such file",
        "other.md#no-such: no heading '#no-such' in docs/other.md",
        "../../elsewhere.md: outside the repository",
    ]
