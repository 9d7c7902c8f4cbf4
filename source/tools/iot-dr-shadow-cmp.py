#!/usr/bin/env python3
"""Test shadow replication: ``iot-dr-shadow-cmp.py --help``. The logic lives in ``iot_dr_cli.shadow_cmp``."""

import sys

from iot_dr_cli.shadow_cmp import main

if __name__ == "__main__":
    sys.exit(main())
