"""Markdown-aware chunking: split at headings, then by size with overlap at sentence boundaries."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

TARGET = 800  # characters; with the title prefix this stays under MiniLM's 256-token window
OVERLAP = 120
VERSION = "1"  # bump when chunk boundaries or chunk text change, so every file is re-chunked

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+")
_BLANK_LINES = re.compile(r"\n[ \t]*\n+")


@dataclass(frozen=True)
class Chunk:
    """One piece of a document, with the document title and the headings above it."""

    title: str
    headings: tuple[str, ...]
    position: int
    body: str

    @property
    def heading(self) -> str:
        """The heading path, outermost first, joined with ' > '."""
        return " > ".join(self.headings)

    @property
    def text(self) -> str:
        """What is embedded and lexically indexed: title and heading path, then the body."""
        label = f"{self.title} — {self.heading}" if self.headings else self.title
        return f"{label}\n\n{self.body}"


def chunk_id(source: str, chunk: Chunk) -> str:
    """Stable id: the same text at the same place in the same file always gets the same id."""
    return hashlib.sha1(f"{source}#{chunk.position}:{chunk.text}".encode()).hexdigest()[:32]


def chunk_document(text: str, name: str) -> list[Chunk]:
    """Chunks of a file's text; NAME's suffix picks Markdown (.md) or plain text."""
    stem = name.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if name.lower().endswith(".md"):
        return chunk_markdown(text, stem)
    return _number(stem, [((), piece) for piece in split_by_size(text)])


def chunk_markdown(text: str, stem: str) -> list[Chunk]:
    """Chunks of a Markdown document; the title is its first '# ' heading, else STEM."""
    title, sections = split_sections(text)
    pieces = [(path, piece) for path, body in sections for piece in split_by_size(body)]
    return _number(title or stem, pieces)


def _number(title: str, pieces: list[tuple[tuple[str, ...], str]]) -> list[Chunk]:
    return [Chunk(title, path, i, body) for i, (path, body) in enumerate(pieces)]


def split_sections(text: str) -> tuple[str, list[tuple[tuple[str, ...], str]]]:
    """The document title and its (heading path, body) sections, '#' in code fences ignored."""
    title = ""
    stack: list[tuple[int, str]] = []
    sections: list[tuple[tuple[str, ...], str]] = []
    lines: list[str] = []
    fence = ""
    for line in text.splitlines():
        if fence or _FENCE.match(line):
            fence = _fence_state(fence, line)
            lines.append(line)
            continue
        match = _HEADING.match(line)
        if not match:
            lines.append(line)
            continue
        sections.append((tuple(h for _, h in stack), "\n".join(lines)))
        lines = []
        level, name = len(match.group(1)), (match.group(2) or "").strip()
        if level == 1 and not title and not stack:
            title = name  # the document's title labels every chunk instead of joining the path
            continue
        stack = [(lvl, h) for lvl, h in stack if lvl < level] + [(level, name)]
    sections.append((tuple(h for _, h in stack), "\n".join(lines)))
    return title, [(path, body.strip()) for path, body in sections if body.strip()]


def _fence_state(fence: str, line: str) -> str:
    """The open fence after LINE: a fence opens, or is closed by a run of the same marker."""
    match = _FENCE.match(line)
    if not fence:
        return match.group(1) if match else ""
    stripped = line.strip()
    closes = match and stripped == match.group(1) and stripped[0] == fence[0] and len(stripped) >= len(fence)
    return "" if closes else fence


def split_by_size(text: str, target: int = TARGET, overlap: int = OVERLAP) -> list[str]:
    """TEXT in pieces of about TARGET characters, each starting with ~OVERLAP of the last."""
    text = text.strip()
    if len(text) <= target * 5 // 4:
        return [text] if text else []
    limit = _even_limit(len(text), target, overlap)
    pieces: list[str] = []
    current, fresh = "", 0
    for sep, unit in _units(text, limit - overlap):
        if fresh and len(current) + len(sep) + len(unit) > limit:
            pieces.append(current)
            current, fresh = _tail(current, overlap), 0
        current = current + sep + unit if current else unit
        fresh += 1
    if fresh:
        pieces.append(current)
    return pieces


def _even_limit(length: int, target: int, overlap: int) -> int:
    """A piece size that splits LENGTH evenly: 1700 characters in three, not two and a stub."""
    step = max(target - overlap, 1)
    count = -(-(length - overlap) // step)
    # The slack absorbs paragraphs that do not pack exactly, which would leave a small last piece.
    return -(-(length - overlap) // count) + overlap + 60


def _units(text: str, limit: int) -> list[tuple[str, str]]:
    """(separator, text) units: paragraphs, cut into sentences (and words) where over LIMIT."""
    units: list[tuple[str, str]] = []
    for paragraph in _BLANK_LINES.split(text):
        if not paragraph.strip():
            continue
        if len(paragraph) <= limit:
            units.append(("\n\n", paragraph))
            continue
        sentences = _SENTENCE_END.split(paragraph)
        parts = [part for sentence in sentences for part in _hard_split(sentence, limit)]
        units += [("\n\n" if i == 0 else " ", part) for i, part in enumerate(parts)]
    return units


def _hard_split(sentence: str, limit: int) -> list[str]:
    """A sentence longer than LIMIT cut at spaces (or anywhere, for one giant token)."""
    parts: list[str] = []
    while len(sentence) > limit:
        cut = sentence.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        parts.append(sentence[:cut])
        sentence = sentence[cut:].lstrip()
    return parts + [sentence]


def _tail(piece: str, overlap: int) -> str:
    """The last ~OVERLAP characters of PIECE, starting at a sentence or word boundary."""
    if overlap <= 0 or len(piece) <= overlap:
        return ""
    tail = piece[-overlap:]
    sentence = _SENTENCE_END.search(tail)
    if sentence and sentence.end() < len(tail) - 20:
        return tail[sentence.end():]
    space = tail.find(" ")
    return tail[space + 1:] if 0 <= space < len(tail) - 1 else tail
