"""Retrieval quality on the evaluation set: recall@5 and MRR for lexical, dense and hybrid.

    .venv/bin/python -m tests.bench.eval_knowledge

Copies the shipped knowledge/ into a temporary folder, indexes it (timed, then re-indexed with
nothing changed), and prints one row per search mode. tests/test_knowledge_eval.py asserts on
the same numbers.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.knowledge import SearchHit
from core.settings import REPO_ROOT, Settings
from storage.rag.indexer import KnowledgeIndexer

CASES = REPO_ROOT / "tests" / "data" / "knowledge_eval.json"
MODES = ("lexical", "dense", "hybrid")
DEPTH = 10  # hits looked at for MRR; recall is at 5


@dataclass(frozen=True)
class Score:
    """Quality of one search mode over the evaluation set."""

    mode: str
    recall_at_5: float
    mrr: float
    misses: list[str]  # queries with no relevant document in the top 5


def load_cases(path: Path = CASES) -> list[tuple[str, set[str]]]:
    """(query, relevant sources) pairs."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [(case["query"], set(case["relevant"])) for case in data["cases"]]


def first_relevant(hits: list[SearchHit], relevant: set[str]) -> int | None:
    """1-based rank of the first hit from a relevant document, or None."""
    return next((rank for rank, hit in enumerate(hits, 1) if hit.source in relevant), None)


def evaluate(indexer: KnowledgeIndexer, cases: list[tuple[str, set[str]]]) -> list[Score]:
    """Recall@5 and MRR@10 of each search mode."""
    searches: dict[str, Callable[[str, str | None, int], list[SearchHit]]] = {
        "lexical": indexer.search_lexical, "dense": indexer.search_dense, "hybrid": indexer.search}
    scores = []
    for mode in MODES:
        ranks = [first_relevant(searches[mode](query, None, DEPTH), relevant) for query, relevant in cases]
        hit5 = [rank is not None and rank <= 5 for rank in ranks]
        scores.append(Score(
            mode=mode,
            recall_at_5=sum(hit5) / len(cases),
            mrr=sum(1 / rank for rank in ranks if rank) / len(cases),
            misses=[query for (query, _), ok in zip(cases, hit5, strict=True) if not ok]))
    return scores


def table(scores: list[Score], cases: int) -> str:
    """The scores as a small text table."""
    lines = [f"knowledge retrieval, {cases} questions", f"{'mode':<8} {'recall@5':>8} {'MRR@10':>7}"]
    lines += [f"{s.mode:<8} {s.recall_at_5:>8.3f} {s.mrr:>7.3f}" for s in scores]
    return "\n".join(lines)


def indexer_for(folder: Path, source: Path = REPO_ROOT / "knowledge") -> KnowledgeIndexer:
    """An indexer over a copy of SOURCE in FOLDER, with its stores there too."""
    shutil.copytree(source, folder / "knowledge")
    return KnowledgeIndexer(Settings(data_dir=folder / "data", knowledge_dir=folder / "knowledge"))


def main() -> None:
    """Index the shipped knowledge base in a temporary folder and print the table."""
    with tempfile.TemporaryDirectory() as folder:
        indexer = indexer_for(Path(folder))
        started = time.perf_counter()
        stats = indexer.index_all()
        took = time.perf_counter() - started
        chunks = sum(stats.chunks.values())
        print(f"indexed {chunks} chunks from {stats.added} files in {took:.2f} s "
              f"({chunks / took:.0f} chunks/s, model load included)")
        started = time.perf_counter()
        again = indexer.index_all()
        print(f"re-index, nothing changed: {time.perf_counter() - started:.3f} s "
              f"({again.unchanged} unchanged, {again.chunks_embedded} embedded)")
        cases = load_cases()
        scores = evaluate(indexer, cases)
        print(table(scores, len(cases)))
        for score in scores:
            for query in score.misses:
                print(f"  {score.mode} missed: {query}")
        indexer.close()


if __name__ == "__main__":
    main()
