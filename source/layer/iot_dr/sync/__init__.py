"""Region syncs for devices that existed before the solution, and the reconciliation sweep on the same engine.

``settings`` reads and checks the guide's settings, ``shard`` and ``checkpoint`` split and resume a run (a file or a
DynamoDB item), ``sizing`` chooses how many devices run at once from the rate limits, ``copy`` writes one device
into the secondary with the replication's own appliers (region-to-region), ``feed`` writes it into the global table
for the pipeline (region-to-ddb), ``engine`` runs a fleet through either under the per-operation rate limiter and
reports what happened; ``reconcile`` is the scheduled sweep on the same engine, ``cursor`` where it stopped.
"""
