"""kmsbridge as a Genesys Cloud Local Key Manager: Hawk, the LKM contract, its front doors."""
