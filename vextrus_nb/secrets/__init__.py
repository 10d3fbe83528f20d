"""Secrets rotation: the protocol, the stores, the targets (see secrets/rotate)."""
