"""The Kubernetes manifests against the reference plan's week 7: default-deny NetworkPolicy,
HPAs for the core services, PodDisruptionBudgets, runAsNonRoot and read-only root
filesystems, a PgBouncer in front of PostgreSQL."""

from __future__ import annotations
