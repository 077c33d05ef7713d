"""The gateway over real Redis and local storage, one topic per module (jobs, events, auth, files, probes).

The task sender is a recorder (the queue hand-off is tested by the worker's tests); everything else is the
real thing: JobStore on a test-owned redis-server, local storage under tmp_path.
"""
