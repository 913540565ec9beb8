"""The SQLite store: the embedded default backend for one process."""
