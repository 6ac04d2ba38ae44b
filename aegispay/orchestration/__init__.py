"""Orchestration: pure workflows that build IO programs from ports; nothing here runs them."""
