"""Benchmarks that print figures (utility, privacy, speed): ``python -m bench.<name>``."""
