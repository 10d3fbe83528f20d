"""What a run leaves and how it is verified: scrub (secret values out of everything written),
identity (who, what, where, which code), seal (the one way a notebook becomes evidence, headless or
interactive), ledger (the hash chain and the sealed notebooks' sha256), signing (Ed25519 over each
entry), export (CSV/JSON for auditors' tools), report (the HTML view)."""
