"""Tools the model may call: built-ins from the bot's abilities, MCP servers, and the loop."""
