"""qsearch: semantic search over your documents with Qwen3-Embedding, FAISS and Qwen3-Reranker."""

from .config import VERSION as __version__
from .config import Settings
from .documents.read import IngestError
from .engine import Engine
from .library import Library
from .models.loading import ModelLoadError
from .store.base import Collection, CollectionError, IndexFolderError
from .store.vectors import VectorIndex
from .types import AddReport, Chunk, Document, FileReport, Hit, Hits

__all__ = [
    "AddReport",
    "Chunk",
    "Collection",
    "CollectionError",
    "Document",
    "Engine",
    "FileReport",
    "Hit",
    "Hits",
    "IndexFolderError",
    "IngestError",
    "Library",
    "ModelLoadError",
    "Settings",
    "VectorIndex",
    "__version__",
]
