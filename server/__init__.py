"""The helpline process: configuration, CLI, app factory and infrastructure."""
