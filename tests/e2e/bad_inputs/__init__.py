"""Hostile and broken input through the real HTTP API: every case ends with its exact outcome.

One stack for the package: redis-server, the gateway and one worker (subprocesses running under the
loopback-only network guard), an input server on 127.0.0.2 (the only address the worker may fetch
from) and a canary on 127.0.0.1 and [::1] at the same port, which records any request a URL trick
would send to the wrong address. Jobs are all submitted up front and run in order on the worker;
each test then waits for its own job. The worker must still be the same process after every case.
"""
