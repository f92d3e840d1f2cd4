"""The just-in-time decryptor, its bounded cache, and the access-state vocabulary."""
