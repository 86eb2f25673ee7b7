"""Turn article files into a searchable index: load -> clean -> chunk -> index (see `ingest.index`)."""

from .index import SAMPLE_DIR, IngestReport, Progress, ingest

__all__ = ["SAMPLE_DIR", "IngestReport", "Progress", "ingest"]
