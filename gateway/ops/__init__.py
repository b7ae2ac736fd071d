"""Operating a running gateway: live status over a local socket, metrics, XEP-0050 admin
commands, configuration reload, and database backups."""
