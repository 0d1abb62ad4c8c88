"""courseforge: Stage 5 course generation through a quality-gated multi-model cascade."""

__version__ = "0.1.0"

__all__ = ["__version__"]
