"""Store: where vectors and chunks live.

Face: the collection contract in `base.py`, implemented by the FAISS folder (`vectors.py`,
with BM25 from `bm25.py`) and by Milvus (`milvus.py`). Knows nothing of documents, models,
search or the web.
"""
