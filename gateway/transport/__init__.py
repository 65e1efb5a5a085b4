"""Thin asyncio shells that drive the sans-IO protocol cores."""
