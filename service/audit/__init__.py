"""The audit log: append-only and hash-chained, so an edited or deleted row is detected."""
