"""Thin handlers, one module per page (or group of pages)."""
