"""Job records, parameters and their state machine. Torch-free: the gateway imports this package."""
