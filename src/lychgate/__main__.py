"""``python -m lychgate`` is the ``lychgate`` command."""

from lychgate.cli.main import main

main()
