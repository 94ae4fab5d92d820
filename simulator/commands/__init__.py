"""One module per CLI command; each registers itself on ``simulator.cli.app``."""
