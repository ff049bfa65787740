"""The REST API's shared parts: who is calling, and how errors are rendered."""
