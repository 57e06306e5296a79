"""The README's KnowledgeIndexer snippet, as a user pastes it, and whether it opened the store."""

from storage.rag.indexer import KnowledgeIndexer

indexer = KnowledgeIndexer()
stats = indexer.index_all()
print(stats.as_dict())
print(f"opened the store itself: {indexer._vectors._client is not None}")
