"""Whole-fleet operations shared by the operator tools and the region syncs.

One enumeration of things (``enumeration``), one reading and comparison of a device across regions (``device``)
and one per-operation rate limiter sized from AWS IoT's default quotas (``rate_limit``).
"""
