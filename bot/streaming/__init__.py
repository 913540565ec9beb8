"""Streaming replies: progressive edits within platform budgets, split past the length limit."""
