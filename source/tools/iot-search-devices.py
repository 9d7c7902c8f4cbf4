#!/usr/bin/env python3
"""Things matching a query: ``iot-search-devices.py --help``. The logic lives in ``iot_dr_cli.things``."""

import sys

from iot_dr_cli.things import search_main

if __name__ == "__main__":
    sys.exit(search_main())
