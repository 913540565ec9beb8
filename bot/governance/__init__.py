"""Governance: where the bot answers, which models each place may use, spend in money."""
