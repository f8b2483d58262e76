"""Orchestration only: Temporal workflows and the pure rules they follow (no I/O, no clocks)."""
