"""The PostgreSQL store: shared state for several replicas of the bot."""
