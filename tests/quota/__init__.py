"""Tests of quota: config, windows, gate, commands, CLI, migrations."""
