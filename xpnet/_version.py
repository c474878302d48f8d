"""The package version: the one place it is written (pyproject reads it from here)."""

__version__ = "0.1.0"
"""The version of xpnet, as a string (``pyproject.toml`` reads it from here)."""
