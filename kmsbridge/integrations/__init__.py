"""Where kmsbridge meets other systems: AWS Lambda, S3 objects, the ESDK's streaming API."""
