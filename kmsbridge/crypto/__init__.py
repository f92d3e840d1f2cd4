"""Cryptography without AWS: KEKs, the ESDK message format, HPKE sealing, CMS / PKCS#7."""
