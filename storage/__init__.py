"""Persistence behind the Store protocol: channel settings, usage ledger, quota."""
