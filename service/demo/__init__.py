"""The zero-config demo: SQLite in a data folder, the demo policy, an admin, a demo user and their agent's grant."""
