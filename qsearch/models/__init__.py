"""Models: text becomes vectors and scores.

Face: `Embedder.encode(texts, is_query=..., instruction=...)` and
`Reranker.score(query, texts, instruction=...)`, made from settings by `choose`. The only
wing that imports torch. Knows nothing of documents, stores, search or the web.
"""
