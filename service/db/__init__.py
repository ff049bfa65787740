"""Database plumbing: engines, the unit of work, column types and migrations. SQL itself lives in repositories."""
