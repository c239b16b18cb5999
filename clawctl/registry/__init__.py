"""The registry: desired state, revision history and (later) runtime records in one SQL database.

SQLite in CLAWCTL_HOME by default (WAL, busy timeout, foreign keys on); any
SQLAlchemy URL via CLAWCTL_REGISTRY. SQLAlchemy is imported only here, and
its exceptions are translated into ``RegistryError`` at this boundary.

    engine.py      open, identify, upgrade, translate errors (``Registry``)
    migrate.py     schema revisions (alembic scripts in migrations/)
    tables.py      the tables at the newest schema revision
    store.py       reads and writes over one connection
    apply.py       plan / record / rollback / delete, one transaction each
    history.py     revision history
    status.py      desired state per fleet and pool
    provenance.py  who applied, from which git commit
    records.py     the plain records these return (no SQLAlchemy)
"""
