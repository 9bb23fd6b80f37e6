"""Search: the one ranking pipeline over collections: retrieval, fusion, rerank order.

Face: `retrieval.retrieve(collections, query, vector, ...) -> Hits`.
"""
