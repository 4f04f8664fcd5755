"""Proofs of the guarantees (docs/testing.md#guarantees): faults, races, restarts, skewed clocks, full disks."""
