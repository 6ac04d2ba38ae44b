"""The simulated payment gateway and its ledgers (in memory, or durable in its own SQLite file)."""
