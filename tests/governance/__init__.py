"""Tests of governance: where the bot answers, model allow-lists, prices and spend."""
