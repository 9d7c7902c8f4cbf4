"""The secondary region's side: the stream trigger that starts one Express workflow per batch (``trigger``), the
worker entry points the state machine calls (``workers``), the version ledger that makes applying idempotent and
ordered (``ledger``), and the appliers per resource kind (``replicate``)."""
