"""Disaster Recovery for AWS IoT: replication logic shared by every Lambda function and tool."""
