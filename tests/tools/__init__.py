"""Tests of tools: streamed tool calls, the loop, built-ins, MCP servers, the Responses API."""
