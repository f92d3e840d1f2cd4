"""Build the Lambda deployment zips: ``python lambda/build.py -o dist/ [--arch x86_64|arm64]``.

The same as ``kmsbridge lambda build``; the work is in ``kmsbridge.integrations.aws_lambda.build``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run from a checkout: the kmsbridge package beside this folder, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kmsbridge.integrations.aws_lambda.build import main

if __name__ == "__main__":
    sys.exit(main())
