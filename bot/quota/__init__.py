"""Quota: limits from the environment, the reserve/settle meter, the view, the operator CLI."""
