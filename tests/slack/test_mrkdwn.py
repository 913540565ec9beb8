"""Markdown to Slack mrkdwn conversion."""

from __future__ import annotations

import pytest

from adapters.slack.mrkdwn import to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("# Title", "*Title*"),
        ("### **Bold** heading ###", "*Bold heading*"),
        ("a **bold** b __also__", "a *bold* b *also*"),
        ("an *italic* and _this_", "an _italic_ and _this_"),
        ("***both***", "*_both_*"),
        ("~~gone~~", "~gone~"),
        ("[docs](https://x.io/a?b=1&c=2)", "<https://x.io/a?b=1&amp;c=2|docs>"),
        ("![cat](https://x.io/c.png)", "<https://x.io/c.png|cat>"),
        ("<https://x.io>", "<https://x.io>"),
        ("[a|b](https://x.io)", "<https://x.io|a¦b>"),
        ("1 < 2 && 3 > 2", "1 &lt; 2 &amp;&amp; 3 &gt; 2"),
        ("use `a<b> **x**` here", "use `a&lt;b&gt; **x**` here"),
        ("- one\n  - two\n    - three", "• one\n    ◦ two\n        ▪ three"),
        ("* star\n+ plus", "• star\n• plus"),
        ("1. first\n2) second", "1. first\n2. second"),
        ("- [ ] todo\n- [x] done", "☐ todo\n☑ done"),
        ("> quoted **b**", "> quoted *b*"),
        ("---", "──────────"),
        ("2*3*4 and snake_case_name", "2*3*4 and snake_case_name"),
        ("**unclosed bold", "**unclosed bold"),
    ],
)
def test_inline_and_blocks(markdown: str, mrkdwn: str) -> None:
    assert to_mrkdwn(markdown) == mrkdwn


def test_code_fence_kept_verbatim_without_language() -> None:
    md = "Run:\n```python\nif a < b and c:\n    print('**no** [x](y)')\n```\nafter"
    assert to_mrkdwn(md) == (
        "Run:\n```\nif a &lt; b and c:\n    print('**no** [x](y)')\n```\nafter"
    )


def test_unclosed_fence_while_streaming_is_closed() -> None:
    assert to_mrkdwn("```\ncode so far") == "```\ncode so far\n```"


def test_table_becomes_code_block() -> None:
    md = "| a | b |\n|---|:-:|\n| 1 | 2 |\ntext"
    assert to_mrkdwn(md) == "```\n| a | b |\n| 1 | 2 |\n```\ntext"
