"""Adapters for the two providers, speaking their documented HTTP APIs with `requests`."""
