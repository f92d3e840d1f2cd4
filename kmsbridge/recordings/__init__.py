"""Recordings: the streaming codec (ESDK v2 messages) and byte ranges. No AWS."""
