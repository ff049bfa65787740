"""OpenID Connect sign-in for the web UI (docs/sign-in.md): the settings, the provider's documents and keys, the ID
token check, and linking a provider's subject to an Airlock user."""
