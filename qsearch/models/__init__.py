"""Models: text becomes vectors and scores.

Face (base.py): `Embedder.encode(texts, is_query=..., instruction=...)` and
`Reranker.score(query, texts, instruction=...)`. `EmbedderBase` / `RerankerBase` hold the loop
every backend shares (validation, token-budget batches, progress, the non-finite guard); the
transformers (embedder.py, reranker.py), remote (remote.py), service-proxy (web/model_service.py)
and test backends each write one method. Made from settings by `choose`; device, dtype and
attention in loading.py, attention.py and place.py. The only wing that imports torch. Knows
nothing of documents, stores, search or the web.
"""
