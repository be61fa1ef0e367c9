"""Test support: the run's PostgreSQL/Redis, in-process apps, subprocess nodes, a WebSocket client."""
