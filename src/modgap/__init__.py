"""modgap: reproducible pipeline for the modality gap in contrastive image-text embeddings."""

__version__ = "0.1.0"
