"""Deployment: the CloudFormation custom-resource protocol (``custom_resource``), the launcher that starts the
regional deployment (``launch_solution``) and the clean uninstall (``uninstall``)."""
