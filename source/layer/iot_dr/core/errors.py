"""Domain errors. Their class names are the error names Step Functions retries or catches on."""

from __future__ import annotations


class ReplicationError(Exception):
    """Base class of everything the replication code raises on purpose."""


class DependencyNotReady(ReplicationError):
    """Something the event needs (a thing, certificate, group, policy) is not in the secondary yet.

    Events arrive in any order; the workflow retries these with backoff until the dependency lands.
    """


class TransientReplicationError(ReplicationError):
    """An AWS call failed in a way that may succeed later (throttling beyond the SDK's retries, 5xx)."""


class MalformedEvent(ReplicationError):
    """The event cannot be understood; retrying will not help, so it is parked for an operator."""


class UnsupportedEvent(ReplicationError):
    """A well-formed event for something replication does not cover (e.g. dynamic thing groups); parked, not lost."""
