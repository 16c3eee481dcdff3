"""lic2cpp: turn a trained CompressAI model into a standalone C++ encoder and decoder."""

__version__ = "0.1.0"
