"""How often a streaming reply may spend a spare write of a budget it shares: the even gap."""

from __future__ import annotations

from bot.streaming.budgets import Outlook

# How long a reply is assumed to go on streaming when spare writes are shared out (answers
# stream for a few seconds to a few tens).
HORIZON = 10.0


def gap(outlook: Outlook, held: int, *, horizon: float = HORIZON, floor: float = 0.0) -> float:
    """Seconds the text a reply shows must age before it may spend a spare write.

    `outlook.supply - outlook.pledged - held` writes are spare over `horizon` seconds for
    `outlook.streaming` replies: each gets spare/n of them, and k evenly spaced frames in a
    horizon leave gaps of horizon / (k + 1) = horizon * n / (spare + n). Evenly spaced frames
    keep the text a reader sees least stale for a given number of writes; spending them as
    they come would show every reply's first seconds and then nothing. Never below `floor`
    (the platform's edit interval); a whole horizon when nothing is spare.
    """
    spare = max(0, outlook.supply - outlook.pledged - held)
    streaming = max(1, outlook.streaming)
    return max(floor, horizon * streaming / (spare + streaming))
