#!/usr/bin/env python3
"""Sample DR-aware device: ``iot-dr-pubsub.py --help``. The logic lives in ``iot_dr_cli.pubsub``."""

from __future__ import annotations

import sys

from iot_dr_cli.pubsub import main

if __name__ == "__main__":
    sys.exit(main())
