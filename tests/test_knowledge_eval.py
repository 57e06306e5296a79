"""Retrieval quality on tests/data/knowledge_eval.json; `pytest -s` prints the table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import REPO_ROOT
from storage.rag.indexer import KnowledgeIndexer
from tests.bench.eval_knowledge import Score, evaluate, indexer_for, load_cases, table


@pytest.fixture(scope="module")
def indexer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KnowledgeIndexer]:
    """The shipped knowledge base, copied to a temporary folder and indexed."""
    indexer = indexer_for(tmp_path_factory.mktemp("eval"))
    indexer.index_all()
    yield indexer
    indexer.close()


def test_cases_point_at_real_documents() -> None:
    cases = load_cases()
    assert len(cases) >= 30
    for query, relevant in cases:
        assert query and relevant
        assert all((REPO_ROOT / "knowledge" / path).is_file() for path in relevant), query


def test_hybrid_keeps_the_best_of_both(indexer: KnowledgeIndexer) -> None:
    cases = load_cases()
    scores = {score.mode: score for score in evaluate(indexer, cases)}
    print("\n" + table(list(scores.values()), len(cases)))
    hybrid: Score = scores["hybrid"]
    assert hybrid.recall_at_5 >= 0.8, hybrid.misses
    assert hybrid.mrr >= max(scores["lexical"].mrr, scores["dense"].mrr) - 0.05


def test_eval_uses_a_copy(indexer: KnowledgeIndexer) -> None:
    assert indexer.root != REPO_ROOT / "knowledge" and Path(indexer.root).is_dir()
