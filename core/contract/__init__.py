"""The vocabulary (floor 1): job params, records and statuses, the state machine, queue and task names,
webhook event names. Data shapes and constants only: no I/O, no torch, nothing above it imported."""
