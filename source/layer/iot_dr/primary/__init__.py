"""The primary region's side: turn registry events, shadow documents and CloudTrail calls into one replication item
each (``capture``), with what the secondary needs read from the primary once (``snapshots``)."""
