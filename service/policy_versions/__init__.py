"""Stored policy versions: the database is the source of truth, and every change is a new version."""
