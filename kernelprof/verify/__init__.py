"""Verification: agreement with the float64 oracle, verdicts, and timed-build agreement."""
