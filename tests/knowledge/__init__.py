"""Tests of documents in the conversation and channel memory."""
