"""nas: automated neural architecture search for small, fast image classifiers."""

__version__ = "0.1.0"
