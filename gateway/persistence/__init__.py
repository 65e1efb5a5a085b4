"""Durable state under EGW_DATA_DIR."""
