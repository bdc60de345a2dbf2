"""Measurement: the one timing harness and the device facts it needs."""
