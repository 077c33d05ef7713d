"""The job store (floor 3): job records, leases, deliveries, idempotency, heartbeats and stage statistics
in Redis, with every key format in ``keys.py``. Torch-free: the gateway imports this package."""
