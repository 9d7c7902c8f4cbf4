#!/usr/bin/env python3
"""One thing, its certificates and policies: ``list-thing.py --help``. The logic lives in ``iot_dr_cli.things``."""

import sys

from iot_dr_cli.things import list_thing_main

if __name__ == "__main__":
    sys.exit(list_thing_main())
