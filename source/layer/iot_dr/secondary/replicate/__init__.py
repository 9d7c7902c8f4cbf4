"""Appliers: each turns one kind of replication event into the same state in the secondary region."""
