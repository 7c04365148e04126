"""Procedurally rendered driving sequences with exact per-frame ground truth."""
