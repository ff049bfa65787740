"""The web UI: a presentation layer over the services (pages arrive with the web UI issue)."""
