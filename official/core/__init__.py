"""Shared infrastructure: atomic result files and one-line errors for binaries."""
