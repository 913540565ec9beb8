"""Platform adapters that turn Slack, Discord and console traffic into core requests."""
