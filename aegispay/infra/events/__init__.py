"""Event store adapters: in-memory and SQLite."""
