#!/usr/bin/env python3
"""Delete things matching a query: ``delete-things.py --help``. The logic lives in ``iot_dr_cli.delete_things``."""

import sys

from iot_dr_cli.delete_things import main

if __name__ == "__main__":
    sys.exit(main())
