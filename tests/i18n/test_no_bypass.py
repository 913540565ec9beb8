"""No sentence the bot writes bypasses the catalog: a scan of bot/ and adapters/ for literals."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Calls whose text reaches people: replies, notes on streamed replies, errors shown as they are.
SINKS = frozenset(
    {
        "reply",
        "send",
        "_tell",
        "tell",
        "interrupt",
        "cut_short",
        "finish",
        "progress",
        "write",
        "upload",
        "UserFacingError",
        "SlackProblem",
        "TooLarge",
        "Unreadable",
        "AudioError",
        "ToolError",
        "ForeignHost",
    }
)
# What the catalog's functions take: their literals are the catalog's ids.
CATALOG = frozenset({"t", "nt", "N_"})
# Two words of letters with a space between: a sentence, not an error code, an emoji, a
# separator or a placeholder.
WORDS = re.compile(r"[A-Za-z]{2,}[^\w\s]*\s+[^\w\s]*[A-Za-z]{2,}")
# Exceptions of the same names that never reach people (logged, then explained in words).
INTERNAL = {"bot/audio/probe.py": frozenset({"Unreadable"})}


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _literal_text(node: ast.AST) -> str:
    """The literal text of an argument, leaving out whatever the catalog already translates."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal_text(v) for v in node.values)
    if isinstance(node, ast.FormattedValue):
        return " {} "
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + " " + _literal_text(node.right)
    if isinstance(node, ast.IfExp):
        return _literal_text(node.body) + " " + _literal_text(node.orelse)
    return ""


def bypasses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    internal = INTERNAL.get(path.relative_to(ROOT).as_posix(), frozenset())
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or _name(node) not in SINKS - internal:
            continue
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            if isinstance(arg, ast.Call) and _name(arg) in CATALOG:
                continue
            text = _literal_text(arg)
            if WORDS.search(text):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text.strip()[:80]!r}")
    return found


def test_no_literal_sentence_reaches_people_without_the_catalog() -> None:
    found = [
        line
        for folder in ("bot", "adapters")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line in bypasses(path)
    ]
    assert found == []


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = ROOT / "bot" / "_scan_sample.py"
    sample.write_text(
        "async def f(ctx, n):\n"
        "    await ctx.reply('Only admins may do this.')\n"
        "    await ctx.reply(f'{n} messages were read')\n"
        "    raise UserFacingError('That did not work, ' + str(n))\n"
        "    await ctx.reply(t('Fine: {n} words', n=n))\n"
        "    await ctx.reply(f'⚠️ {n}')\n",
        encoding="utf-8",
    )
    try:
        found = bypasses(sample)
    finally:
        sample.unlink()
    lines = sorted(int(line.split(": ", 1)[0].rsplit(":", 1)[1]) for line in found)
    assert lines == [2, 3, 4]
