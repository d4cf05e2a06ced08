"""SQLAlchemy implementations of the repositories in :mod:`lychgate.store.ports`."""
