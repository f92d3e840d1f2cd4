"""Exporting recordings to a customer's recipient: archives and the bulk export job."""
