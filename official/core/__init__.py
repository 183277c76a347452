"""Shared infrastructure: the one config schema and preset registry (config), atomic result
files (io) and one-line errors for binaries (cli)."""
