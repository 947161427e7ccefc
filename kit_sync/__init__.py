"""kit-sync: keep one regenerating keep-in-touch task per person."""

__version__ = "0.1.0"
