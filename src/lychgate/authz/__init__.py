"""The authorization server (control plane): sign-in, sessions, keys and the config feed."""
