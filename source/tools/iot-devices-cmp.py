#!/usr/bin/env python3
"""Compare devices across regions: ``iot-devices-cmp.py --help``. The logic lives in ``iot_dr_cli.devices_cmp``."""

import sys

from iot_dr_cli.devices_cmp import main

if __name__ == "__main__":
    sys.exit(main())
