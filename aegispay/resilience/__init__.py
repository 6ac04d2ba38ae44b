"""Resilience: retries with backoff, circuit breakers and routing, wrapped around gateways."""
