"""The ``lychgate`` command line: thin commands over the programmatic API."""
