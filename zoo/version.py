"""The version of keras-zoo: read by zoo/__init__.py, pyproject.toml (the
package metadata) and every saved preset's metadata.json."""

__version__ = "0.1.0"
