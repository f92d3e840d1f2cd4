"""Older recorders: bring-your-own-key certificates, key import, PKCS#7 playback."""
