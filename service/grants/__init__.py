"""Grants: an agent's credential, its owner, labels and the upstreams it may reach."""
