"""clawctl: declarative operator CLI and supervisor for fleets of AI agents."""

__version__ = "0.1.0"
