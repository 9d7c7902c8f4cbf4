"""A two-region local AWS cloud for Disaster Recovery for AWS IoT, built on moto.

Everything moto lacks is added here as small extensions (registry events, a rules engine, global-table
replication, in-process Lambda execution, stream pollers, CloudTrail events); product code never knows
it runs locally.
"""
