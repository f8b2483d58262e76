"""What the worker, the activities and the starter share: settings, secrets, the payload codec,
the Temporal connection and webhook signing. Imports nothing from activities, starter or sandbox."""
