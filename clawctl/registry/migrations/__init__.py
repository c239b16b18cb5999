"""Alembic migration scripts of the registry schema; run by ``clawctl.registry.migrate``."""
