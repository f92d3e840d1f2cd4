"""kmsbridge: customer-held AWS KMS keys for encrypted call recordings.

The key hierarchy, top to bottom: the customer's KMS key (``kms``) wraps the org's RSA
key-encryption key (``keks``), whose public key wraps one AES-256 data key per recording
(``recordings``), which encrypts the recording in an AWS Encryption SDK v2 message.
"""

__version__ = "0.1.0"
