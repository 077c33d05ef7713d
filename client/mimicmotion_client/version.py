"""The client's version (the distribution's, kept in step with client/pyproject.toml)."""

__version__ = "0.1.0"
