"""The shared core every side uses: AWS clients with standard retries and endpoint overrides (``aws``), ARNs
(``arns``), settings from the environment (``settings``), the replication item and its DynamoDB JSON form
(``items``, ``dynamo_json``), the event-type routing declared once (``event_types``), errors, logs and metrics."""
