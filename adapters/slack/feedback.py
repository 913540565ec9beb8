"""👍/👎 on Slack replies: a context_actions block of feedback buttons, and the clicks back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.slack.events import PLATFORM, Origin
from bot.events import Place, Request, User
from bot.i18n import t

JSON = dict[str, Any]
FEEDBACK_ACTION = "chatops_feedback"
# A section block shows at most this much mrkdwn; longer texts go in a markdown block.
SECTION_CHARS = 3000


def feedback_block(key: str) -> JSON:
    """Slack's feedback buttons for one reply; each button's value says the vote and reply."""
    return {
        "type": "context_actions",
        "elements": [
            {
                "type": "feedback_buttons",
                "action_id": FEEDBACK_ACTION,
                "positive_button": {
                    "text": {"type": "plain_text", "text": "👍"},
                    "value": f"up:{key}",
                    "accessibility_label": t("This answer was helpful"),
                },
                "negative_button": {
                    "text": {"type": "plain_text", "text": "👎"},
                    "value": f"down:{key}",
                    "accessibility_label": t("This answer was not helpful"),
                },
            }
        ],
    }


def text_blocks(mrkdwn: str, markdown: str) -> list[JSON]:
    """What a message with blocks shows as its text (blocks replace `text` on screen)."""
    if len(mrkdwn) <= SECTION_CHARS:
        return [{"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn}}]
    return [{"type": "markdown", "text": markdown}]


def vote_request(body: Mapping[str, Any], user: User, team_id: str) -> Request | None:
    """A `feedback` request for a click on the buttons ("up <key>" / "down <key>")."""
    actions = body.get("actions") or []
    value = str((actions[0] if actions else {}).get("value") or "")
    vote, _, key = value.partition(":")
    if vote not in ("up", "down") or not key.isdigit():
        return None
    channel: Mapping[str, Any] = body.get("channel") or {}
    message: Mapping[str, Any] = body.get("message") or {}
    ts = str(message.get("ts") or "")
    action_ts = str((actions[0] if actions else {}).get("action_ts") or body.get("trigger_id"))
    return Request(
        place=Place(
            PLATFORM,
            str(channel.get("id", "")),
            str(message.get("thread_ts") or ts) or None,
            team_id,
        ),
        user=user,
        text=f"{vote} {key}",
        command="feedback",
        event_id=f"feedback:{user.id}:{action_ts}",
        native=Origin(ts=ts, response_url=str(body.get("response_url") or "") or None),
    )
