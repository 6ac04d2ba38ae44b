"""Projection store adapters: the current payment rows, in memory and SQLite."""
