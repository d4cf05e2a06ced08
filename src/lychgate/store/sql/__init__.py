"""SQLAlchemy implementations of the repositories in :mod:`lychgate.store.ports` and
:mod:`lychgate.store.coordination`."""
