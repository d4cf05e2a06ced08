"""A deployment: its directory, secrets, store and keys, and the operations the CLI runs."""
