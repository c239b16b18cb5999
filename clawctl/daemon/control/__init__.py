"""The daemon's control server: the Unix socket agents (through the SDK) and the CLI talk to.

``directory`` is what the reconciler shares with it, ``db`` runs its registry
work on one thread, ``server`` accepts, authenticates and dispatches, and
``sessions`` carries out session placement and lifecycle.
"""
