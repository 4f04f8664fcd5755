"""Proofs of the README's guarantees: faults, races, restarts, skewed clocks, full disks (issue #8)."""
