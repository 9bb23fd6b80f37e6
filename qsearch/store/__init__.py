"""Store: where vectors and chunks live.

Face: the collection contract in `base.py` (`Collection`, `CollectionError`, `DocInfo`,
`KeywordHits`), implemented by the FAISS folder (`vectors.py`, with BM25 from `bm25.py`,
saved by `folder_files.py` through `folders.py`) and by Milvus (`milvus.py`, with
`milvus_layout.py` and `milvus_rows.py`). Knows nothing of documents, models, search or the web.
"""
