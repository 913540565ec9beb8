"""Tests of the audio part."""
