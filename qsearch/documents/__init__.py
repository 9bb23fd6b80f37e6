"""Documents: a file becomes chunked text.

Face: `read.load` / `read.parse` (a file -> `Document`), `chunk.chunk_document`
(`Document` -> `Chunk`s), `pool.read_files` (many files, read in reader processes with a
deadline, one `FileReport` each). Knows nothing of models, stores, search or the web.
"""
