"""The life of an org's KEKs: rotation, rewrap, backup, inventory, revocation windows."""
