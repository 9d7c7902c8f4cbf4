"""Operator tools and the ``iot-dr`` command of Disaster Recovery for AWS IoT."""
