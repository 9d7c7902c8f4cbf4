"""Disaster Recovery for AWS IoT: the logic behind every Lambda function and tool, grouped by where it runs.

``core`` (shared), ``primary`` (capture), ``secondary`` (trigger, workers, ledger, appliers), ``parking`` (dead
letters and replay), ``sync`` (region syncs and the reconciliation sweep), ``fleet`` (enumeration, comparison, rate
limits), ``deploy`` (launcher, uninstall), ``health`` (Route 53 health check) and ``provisioning`` (JITR).
"""
