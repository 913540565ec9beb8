"""Tests of the streaming part."""
