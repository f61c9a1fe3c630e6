"""The embedded run store: every run and its tasks and attempts, kept in SQLite."""
