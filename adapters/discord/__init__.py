"""Discord: gateway events, slash commands, reply chains, rate-limited replies and media."""
