"""Settings shared by every test module."""

from __future__ import annotations

from hypothesis import settings

# Property tests check behaviour, not speed: on a loaded 2-core machine running tests side by side, one example
# may take far longer than Hypothesis's default 200 ms deadline without anything being wrong.
settings.register_profile("iot-dr", deadline=None)
settings.load_profile("iot-dr")
