"""The knowledge folder on disk: safe paths, the walk over a domain, reading and writing files.

Everything the indexer touches is confined to the knowledge folder: API paths that are
absolute, climb out with '..' or resolve (through symlinks) elsewhere are refused, and a walk
reports such files as skipped instead of following them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import BadRequest, UnknownDomain, UnsafePath
from core.knowledge import DOMAINS, MAX_DOCUMENT_BYTES, InlineDocument

SUFFIXES = (".md", ".txt")


class Unreadable(Exception):
    """A file that cannot be indexed (binary, not UTF-8, too large); the message says which."""


@dataclass(frozen=True)
class Loaded:
    """A file's text with the facts the manifest keeps about it."""

    text: str
    sha256: str
    size: int
    mtime_ns: int


def check_domains(domains: Iterable[str]) -> list[str]:
    """DOMAINS, in order, or UnknownDomain naming the valid ones."""
    wanted = list(dict.fromkeys(domains))
    for domain in wanted:
        if domain not in DOMAINS:
            raise UnknownDomain(f"unknown knowledge domain {domain!r}; valid: {', '.join(DOMAINS)}")
    return wanted


def inside(root: Path, path: Path) -> bool:
    """Whether PATH, symlinks resolved, lies within ROOT."""
    return path.resolve().is_relative_to(root.resolve())


def safe_source(root: Path, raw: str) -> str:
    """A caller's path as a source ('technical/rsi.md', or a folder); refuses unsafe ones."""
    text = raw.strip().replace("\\", "/")  # a Windows-style '..\\x' must not slip through
    pure = PurePosixPath(text)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", text):
        raise UnsafePath(f"{raw!r} is absolute; give a path relative to the knowledge folder")
    if ".." in pure.parts:
        raise UnsafePath(f"{raw!r} climbs out of the knowledge folder with '..'")
    parts = [part for part in pure.parts if part != "."]
    if not parts:
        raise BadRequest("empty path; give one like technical/rsi.md")
    if any(part.startswith(".") for part in parts):
        raise BadRequest(f"{raw!r}: hidden files and folders are not indexed")
    check_domains(parts[:1])
    source, target = "/".join(parts), root.joinpath(*parts)
    if not inside(root, target):
        raise UnsafePath(f"{raw!r} resolves outside the knowledge folder")
    if not target.is_dir() and target.suffix.lower() not in SUFFIXES:
        raise BadRequest(f"{raw!r}: only {' and '.join(SUFFIXES)} files are indexed")
    return source


def walk(root: Path, folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Indexable sources under ROOT/FOLDER, and (path, reason) for what was passed over."""
    base = root / folder
    if base.is_symlink() and not inside(root, base):
        return [], [(folder, "symlinked folder points outside the knowledge folder")]
    found: list[str] = []
    skipped: list[tuple[str, str]] = []
    for here, dirs, names in os.walk(base):
        rel = Path(here).relative_to(root).as_posix()
        for name in [d for d in dirs if Path(here, d).is_symlink()]:
            skipped.append((f"{rel}/{name}", "symlinked folder not followed"))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not Path(here, d).is_symlink())
        for name in sorted(n for n in names if not n.startswith(".")):
            source, reason = f"{rel}/{name}", _unindexable(root, Path(here, name))
            if reason:
                skipped.append((source, reason))
            else:
                found.append(source)
    return found, skipped


def _unindexable(root: Path, path: Path) -> str:
    """Why a file found by the walk cannot be indexed, or '' when it can."""
    if path.suffix.lower() not in SUFFIXES:
        return f"not a {' or '.join(SUFFIXES)} file"
    if path.is_symlink() and not inside(root, path):
        return "symlink points outside the knowledge folder"
    if not path.is_file():
        return "not a regular file"
    return ""


def read_file(path: Path) -> Loaded:
    """The file's text and facts; Unreadable when it is too large, binary or not UTF-8."""
    stat = path.stat()
    if stat.st_size > MAX_DOCUMENT_BYTES:
        raise Unreadable(f"over the {MAX_DOCUMENT_BYTES:,}-byte limit ({stat.st_size:,} bytes)")
    with path.open("rb") as handle:
        data = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise Unreadable(f"over the {MAX_DOCUMENT_BYTES:,}-byte limit")
    if b"\x00" in data:
        raise Unreadable("binary file (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Unreadable(f"not UTF-8 text (byte {error.start})") from None
    return Loaded(text, hashlib.sha256(data).hexdigest(), stat.st_size, stat.st_mtime_ns)


def slug(title: str) -> str:
    """A short lowercase hyphenated file stem for a title."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)[:80].strip("-") or "document"


def write_document(root: Path, document: InlineDocument) -> str:
    """Write an inline document to knowledge/<domain>/<slug>.md (atomically); its source."""
    source = f"{document.domain}/{slug(document.title)}.md"
    target = root / source
    if not inside(root, target):
        raise UnsafePath(f"{source} would be written outside the knowledge folder")
    text = document.text
    if not re.match(r"\s*# ", text):
        text = f"# {document.title}\n\n{text}"
    target.parent.mkdir(parents=True, exist_ok=True)
    # A dot-prefixed temporary file, so a concurrent walk never sees it half-written.
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text if text.endswith("\n") else text + "\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return source
