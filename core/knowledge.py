"""The knowledge base's vocabulary: its domains, search requests and hits, index statistics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DOMAINS = ("technical", "sentiment", "fundamental", "risk", "papers")
Domain = Literal["technical", "sentiment", "fundamental", "risk", "papers"]
MAX_DOCUMENT_BYTES = 1_000_000  # also the limit for files in the folder
COUNTERS = ("added", "updated", "unchanged", "deleted", "chunks_embedded")


def _one_line(value: str) -> str:
    # A title becomes a file name and a "# " heading; a newline in it would break both.
    value = " ".join(value.split())
    if not value:
        raise ValueError("title must not be blank")
    return value


def _document_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    if len(value.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise ValueError(f"text is over {MAX_DOCUMENT_BYTES} bytes of UTF-8")
    return value


class SearchRequest(BaseModel):
    """A knowledge search: REST query parameters, or the knowledge.search request body."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=1000)
    domain: Domain | None = Field(None, description="unset: every domain")
    k: int = Field(5, ge=1, le=50)


class KnowledgeSearchQuery(BaseModel):
    """GET /api/knowledge/search's parameters: q, domain, k."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, max_length=1000)
    domain: Domain | None = Field(None, description="unset: every domain")
    k: int = Field(5, ge=1, le=50)

    def as_request(self) -> SearchRequest:
        """The same search as a SearchRequest."""
        return SearchRequest(query=self.q, domain=self.domain, k=self.k)


class IndexBody(BaseModel):
    """POST /api/knowledge/index: which domains to index incrementally (none: every one)."""

    model_config = ConfigDict(extra="forbid")

    domains: list[Domain] | None = None


class SearchHit(BaseModel):
    """One retrieved chunk; score is higher-is-better (RRF, cosine or BM25 by search mode)."""

    chunk_id: str
    source: str = Field(description="path under knowledge/, e.g. technical/rsi.md")
    domain: str
    title: str
    heading: str = Field(description="the heading path joined with ' > '")
    text: str
    score: float


class SearchResponse(BaseModel):
    """Hits for a search, best first."""

    results: list[SearchHit]


class InlineDocument(BaseModel):
    """A document sent in an event rather than placed in the folder; it is written there."""

    domain: Domain
    title: Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_one_line)]
    text: Annotated[str, Field(min_length=1), AfterValidator(_document_text)]


class DomainInfo(BaseModel):
    """What one domain holds."""

    domain: str
    files: int
    chunks: int


class SkippedFile(BaseModel):
    """A file that was not indexed, and why."""

    path: str
    reason: str


class IndexStats(BaseModel):
    """Outcome of an indexing run; stats["technical"] is that domain's chunk count afterwards."""

    chunks: dict[str, int] = Field(default_factory=dict, description="domain -> chunks indexed")
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[SkippedFile] = Field(default_factory=list)
    chunks_embedded: int = 0
    seconds: float = 0.0

    def __getitem__(self, key: str) -> int:
        if key in self.chunks:
            return self.chunks[key]
        if key in COUNTERS:
            return int(getattr(self, key))
        raise KeyError(f"{key!r} is neither an indexed domain ({', '.join(self.chunks)}) "
                       f"nor one of {', '.join(COUNTERS)}")

    def __contains__(self, key: object) -> bool:
        return key in self.chunks or key in COUNTERS

    def skip(self, path: str, reason: str) -> None:
        """Record a file that was not indexed."""
        self.skipped.append(SkippedFile(path=path, reason=reason))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return self.model_dump(mode="json")


class KnowledgeOverview(BaseModel):
    """GET /api/knowledge: every domain with its file and chunk counts."""

    domains: list[DomainInfo]
