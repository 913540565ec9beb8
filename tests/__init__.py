"""Tests that cross real protocol boundaries on 127.0.0.1."""
