"""Every relative link in the repository's Markdown resolves inside the repository.

A link names a file or folder that exists under the root (never above it), and an anchor
(`#part`) names a heading of the document it points to, as GitHub spells heading anchors.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Not the project's documents: tools' caches, environments, the CI machinery, run state.
SKIPPED = {"node_modules", "roomhooks.egg-info"}

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # https:, mailto:, ...


def markdown_files() -> list[Path]:
    found = []
    for path in sorted(ROOT.rglob("*.md")):
        parts = path.relative_to(ROOT).parts
        if any(part.startswith(".") or part in SKIPPED for part in parts[:-1]):
            continue
        found.append(path)
    return found


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks, with inline code blanked out."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(INLINE_CODE.sub("", line))
    return lines


def links(path: Path) -> list[str]:
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        targets += LINK.findall(line) + IMAGE.findall(line)
    return targets


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if match is None:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken(path: Path, target: str) -> str | None:
    """Why `target`, linked from `path`, does not resolve; None when it does."""
    file_part, _, anchor = target.partition("#")
    resolved = (path.parent / file_part).resolve() if file_part else path
    if not resolved.is_relative_to(ROOT):
        return "points outside the repository"
    if not resolved.exists():
        return "no such file"
    if anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
        return f"no heading #{anchor} in {resolved.relative_to(ROOT)}"
    return None


DOCUMENTS = markdown_files()


def test_the_documents_are_found():
    names = {str(path.relative_to(ROOT)) for path in DOCUMENTS}
    assert {"README.md", "ARCHITECTURE.md", "docs/configuration.md"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path: Path):
    problems = [
        f"{target}: {why}"
        for target in links(path)
        if not EXTERNAL.match(target) and (why := broken(path, target)) is not None
    ]
    assert problems == []


# What a clone of the repository does not hold: the team's design notes live beside it.
# Spelled in two parts so that a grep for them over the tree finds nothing, this file included.
OUTSIDE = ("../" + "shared", "DESIGN" + ".md")


def test_no_document_or_docstring_points_outside_the_repository():
    sources = [
        path
        for pattern in ("*.py", "*.md")
        for path in ROOT.rglob(pattern)
        if path != Path(__file__).resolve()
        and not any(
            part.startswith(".") or part in SKIPPED for part in path.relative_to(ROOT).parts[:-1]
        )
    ]
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sources
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(name in line for name in OUTSIDE)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("The dev broker's limits", "the-dev-brokers-limits"),
        ("Registry (the HTTP API)", "registry-the-http-api"),
        ("`make chaos`: fault tests", "make-chaos-fault-tests"),
        ("What bad input gets", "what-bad-input-gets"),
    ],
)
def test_anchors_are_spelled_as_github_spells_them(heading, anchor):
    assert slug(heading) == anchor


def test_a_link_out_of_the_repository_or_to_a_missing_part_is_caught():
    doc = ROOT / "README.md"
    assert broken(doc, "../../elsewhere/notes.md") is not None
    assert broken(doc, "no/such/file.md") == "no such file"
    assert broken(doc, "ARCHITECTURE.md#no-such-heading") is not None
    assert broken(doc, "ARCHITECTURE.md#the-layer-rule") is None
