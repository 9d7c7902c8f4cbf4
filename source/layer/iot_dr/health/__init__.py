"""Failover: the Route 53 health check's MQTT canary (``health_check``) and the checker's own IoT identity, created
and removed with its stack (``checker_identity``, ``checker_credentials``)."""
