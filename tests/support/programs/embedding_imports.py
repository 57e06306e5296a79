"""Embed a text offline in a fresh interpreter, then print which heavy modules got imported.

    python -m tests.support.programs.embedding_imports

Prints a list (empty when none of torch, sentence-transformers, the Hugging Face hub,
transformers or Chroma's default embedding functions was loaded).
"""

import sys

from storage.rag.embedding import Embedder

for precision in ("int8", "float32"):
    Embedder(precision=precision).embed(["offline"])
bad = {"torch", "sentence_transformers", "huggingface_hub", "transformers",
       "chromadb.utils.embedding_functions"} & set(sys.modules)
print(sorted(bad))
