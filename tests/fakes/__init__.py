"""Fakes of the gateway, Slack and Discord that speak the real protocols on 127.0.0.1."""
