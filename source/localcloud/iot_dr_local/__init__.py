"""A two-region local AWS cloud for Disaster Recovery for AWS IoT, built on moto.

Everything moto lacks is added here as small extensions (registry events, a rules engine, global-table
replication, Lambda execution environments in worker processes, stream pollers, CloudTrail events); product
code never knows it runs locally.
"""
