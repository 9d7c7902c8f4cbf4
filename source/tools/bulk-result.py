#!/usr/bin/env python3
"""Write bulk registration certificates: ``bulk-result.py --help``. The logic lives in ``iot_dr_cli.bulk_result``."""

import sys

from iot_dr_cli.bulk_result import main

if __name__ == "__main__":
    sys.exit(main())
