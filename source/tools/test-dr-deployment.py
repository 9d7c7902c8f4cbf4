#!/usr/bin/env python3
"""End-to-end test: ``test-dr-deployment.py --help``. The logic lives in ``iot_dr_cli.test_deployment``."""

import sys

from iot_dr_cli.test_deployment import main

if __name__ == "__main__":
    sys.exit(main())
