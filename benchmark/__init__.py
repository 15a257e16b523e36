"""backlit-bench: retrain, run and compare CLIP-guided backlit enhancement methods."""
__version__ = "0.1.0"
