"""remit's benchmarks and chaos run: `python -m bench.<name>` (not part of the test suite)."""
