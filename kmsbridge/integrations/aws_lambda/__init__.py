"""The Lambda side: the decryptor API, its client, telemetry, the jobs worker, the build."""
