"""Slack: Socket Mode and HTTP events, streamed replies, files and thread history."""
