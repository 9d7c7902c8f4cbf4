#!/usr/bin/env python3
"""List all things: ``list-all-things.py --help``. The logic lives in ``iot_dr_cli.things``."""

import sys

from iot_dr_cli.things import list_all_main

if __name__ == "__main__":
    sys.exit(list_all_main())
