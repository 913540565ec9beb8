"""More conversations than Slack's chat.update allowance, over three replicas: every final
text arrives, nothing is rate limited, no message ever shows less than it did."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from pathlib import Path

from tests.fakes.gateway import FakeGateway
from tests.fakes.slack import BOT_USER, UPDATE_BURST, FakeSlack
from tests.replica_harness import deliver, mention, slack_replicas

# Beyond the 50 chat.update Slack allows at once: before, the finals left over waited on the
# shared budget until they were given up after 60 s.
CONVERSATIONS = 70
_WORD = re.compile(r"\bword\d+\b")


def answers(slack: FakeSlack, channel: str, ts: str) -> list[str]:
    return [m["text"] for m in slack.thread(channel, ts) if m.get("user") == BOT_USER]


async def test_every_final_text_arrives_when_conversations_outnumber_the_edits(
    postgres_url: str, tmp_path: Path
) -> None:
    assert CONVERSATIONS > UPDATE_BURST
    words = [f"word{n}" for n in range(30)]
    full = " ".join(words)
    async with FakeGateway(chunk_delay=0.04) as gateway, FakeSlack() as slack:
        gateway.chunks = [w + " " for w in words[:-1]] + [words[-1]]
        async with slack_replicas(3, slack, gateway, postgres_url, tmp_path) as replicas:
            asked = [
                (f"C{i}", *mention(slack, f"C{i}", f"talk {i}", f"EvScale{i:03d}"))
                for i in range(CONVERSATIONS)
            ]
            await asyncio.gather(
                *(
                    deliver(replicas[i % 3], body, slack.signing_secret)
                    for i, (_, _, body) in enumerate(asked)
                )
            )

            def all_complete() -> bool:
                return all(answers(slack, c, ts) == [full] for c, ts, _ in asked)

            # Well under the minute after which finals used to be given up.
            await slack.wait_until(all_complete, within=45)
    assert not slack.rate_limited, dict(slack.rate_limited)
    # Finals the edits could not carry were posted anew, and their first frames deleted.
    assert any(w.method == "chat.delete" for w in slack.writes)
    shown: dict[str, list[int]] = defaultdict(list)
    for w in slack.writes:
        if w.method != "chat.delete":
            shown[w.ts].append(len(_WORD.findall(w.text)))
    for ts, counts in shown.items():
        assert counts == sorted(counts), (ts, counts)
