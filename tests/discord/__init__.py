"""Tests of the discord part."""
