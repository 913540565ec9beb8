"""Tests of operations: the ops port, readiness, metrics, logs and the shipped dashboards."""
