"""Tests of the slack part."""
