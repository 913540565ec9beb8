"""Core of the chat-ops bot: platform-neutral events, commands, streaming and the gateway client."""
