"""High availability: replication, the pooler and Sentinel, read and driven through their own
protocols (the engines the ha/failover runbook and the checklist's HA checks use)."""
