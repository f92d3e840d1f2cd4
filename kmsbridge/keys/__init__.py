"""Keys at rest: KEK and org records, cryptoperiods, bundles, KMS wrapping, the key table."""
