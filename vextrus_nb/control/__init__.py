"""The control plane: where runs are recorded and serialized, for one host or a team.

settings.py finds the configuration ($VEXTRUS_CONTROL, else parameters/control.yaml, else the
embedded files); schema.py installs the shared store's tables; shared_ledger.py, leases.py and
evidence_bucket.py are the shared ledger, the environment leases and the sealed notebooks' bucket.
"""
