"""The control-socket protocol: framing, message envelopes, the method table, authentication.

Shared by the daemon's control server and the agent SDK, so it imports only the
standard library and ``clawctl.errors`` (an agent pays milliseconds to load it).
Everything here is sans-IO (bytes and dicts in, bytes and dicts out) except
``auth.peer_credentials`` and ``auth.process_ancestry``, which read the kernel.
See docs/protocol.md.
"""
