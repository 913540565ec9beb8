"""Attached documents in a question, through the core: memory adapter, fake gateway, SQLite."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.events import Attachment, Turn
from tests.core_harness import Core, running_core
from tests.document_fixtures import big_log, encrypted_pdf, image_only_pdf, pdf_bytes
from tests.fakes.gateway import png_bytes
from tests.memory_adapter import make_request

NEEDLE = "payment gateway rejected card token tok_visa_4242 with ERR_CARD_DECLINED"
QUESTION = "why was the card token rejected by the payment gateway"


def _attach(core: Core, name: str, data: bytes, mime: str = "text/plain", **kw: Any) -> Attachment:
    attachment = Attachment(f"F-{name}", name, mime, kw.pop("size", len(data)), "file")
    core.adapter.add_file(attachment.id, data)
    return attachment


async def _ask(core: Core, text: str, *files: Attachment, thread: str = "T1") -> str:
    await core.send(make_request(text, attachments=files, thread=thread))
    return "\n".join(core.adapter.messages.values())


def _last_user_text(core: Core) -> str:
    body = core.gateway.chat_bodies()[-1]
    content = body["messages"][-1]["content"]
    return str(content)


async def test_a_small_log_goes_whole_into_the_question(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        log = b"12:00 INFO start\n12:01 ERROR disk /var is full\n12:02 INFO retry\n"
        await _ask(core, "why does this fail?", _attach(core, "error.log", log))
        sent = _last_user_text(core)
    assert sent.startswith("why does this fail?")
    assert "`error.log`" in sent and "12:01 ERROR disk /var is full" in sent
    assert core.gateway.embedding_bodies() == []  # whole files need no embeddings


async def test_a_3_mb_log_sends_the_chunk_with_the_relevant_line_not_the_file(
    tmp_path: Path,
) -> None:
    data = big_log(3 * 1024 * 1024, NEEDLE)
    async with running_core(tmp_path) as core:
        shown = await _ask(core, QUESTION, _attach(core, "app.log", data))
        sent = _last_user_text(core)
        ledger = await core.store.ledger()
    assert NEEDLE in sent
    assert len(sent) < 40_000, "only the nearest parts, not 3 MB"
    assert "nearest the question" in sent
    # The needle's chunk is labelled with the lines it spans, the needle's line among them.
    line = next(n for n, text in enumerate(data.decode().splitlines(), 1) if NEEDLE in text)
    label = re.findall(r"\[lines ([\d,]+)-([\d,]+)\]\n", sent[: sent.index(NEEDLE)])[-1]
    first, last = (int(n.replace(",", "")) for n in label)
    assert first <= line <= last
    # The user is told which part of which file was used.
    assert "`app.log`" in shown and "too large to read whole" in shown
    assert f"lines {first:,}-{last:,}" in shown
    embed_rows = [r for r in ledger if r.charge.command == "embed"]
    assert len(embed_rows) == 1 and embed_rows[0].status == "ok"
    assert embed_rows[0].amounts.tokens_in > 100_000  # charged what the gateway counted


async def test_re_asking_about_the_same_file_embeds_nothing_again(tmp_path: Path) -> None:
    data = big_log(400_000, NEEDLE)
    async with running_core(tmp_path) as core:
        await _ask(core, QUESTION, _attach(core, "app.log", data))
        first = len(core.gateway.embedded())
        await _ask(core, QUESTION, _attach(core, "app.log", data), thread="T2")
        again = core.gateway.embedded()[first:]
        ledger = await core.store.ledger()
    assert first > 100
    assert again == [], "chunks and question come from the cache"
    assert NEEDLE in _last_user_text(core)
    assert [r.charge.command for r in ledger].count("embed") == 1


async def test_a_pdf_text_is_read_page_by_page(tmp_path: Path) -> None:
    pdf = pdf_bytes(
        [["Runbook: restart payments with systemctl restart pay"], ["Page two: call Ada"]]
    )
    async with running_core(tmp_path) as core:
        await _ask(
            core, "how do I restart payments?", _attach(core, "runbook.pdf", pdf, "application/pdf")
        )
        sent = _last_user_text(core)
    assert "systemctl restart pay" in sent and "Page two: call Ada" in sent and "PDF" in sent


async def test_unreadable_files_get_plain_refusals_and_no_model_call(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        cases = {
            "locked.pdf": (encrypted_pdf([["secret plan"]]), "application/pdf", "encrypted"),
            "scan.pdf": (image_only_pdf(), "application/pdf", "no text layer"),
            "notes.txt": (png_bytes(), "text/plain", "named like text, but it is a PNG image"),
            "blob.dat": (b"\x00\x01\x02binary\x00" * 100, "application/octet-stream", "binary"),
        }
        for index, (name, (data, mime, why)) in enumerate(cases.items()):
            await _ask(core, "what is in it?", _attach(core, name, data, mime), thread=f"T{index}")
            (text,) = core.adapter.messages_in(make_request(thread=f"T{index}").place)
            assert text.startswith("⚠️") and name in text and why in text, text
        # A 200 MB file is refused by its declared size: never downloaded (the adapter has
        # no bytes for it, so a download would fail loudly).
        huge = Attachment("F-huge", "huge.log", "text/plain", 200 * 1024 * 1024, "file")
        await _ask(core, "what is in it?", huge, thread="T9")
        (text,) = core.adapter.messages_in(make_request(thread="T9").place)
        assert text.startswith("⚠️") and "huge.log" in text and "200.0 MB" in text, text
        assert core.gateway.chat_bodies() == []
        ledger = await core.store.ledger()
    assert ledger == []


async def test_a_failing_embeddings_call_sends_the_beginning_and_says_so(tmp_path: Path) -> None:
    data = big_log(300_000, NEEDLE, at=0.9)
    async with running_core(tmp_path) as core:
        # Every attempt (first try and its retries) fails.
        core.gateway.fail_next(500, "server_error", times=10)
        shown = await _ask(core, QUESTION, _attach(core, "app.log", data))
        core.gateway.faults.clear()
        sent = _last_user_text(core)
        ledger = await core.store.ledger()
    assert "here is its beginning" in sent and "[lines 1-" in sent
    assert NEEDLE not in sent
    assert "too large to read whole, so only its beginning" in shown
    assert "You said:" in shown, "the question is still answered"
    (embed_row,) = [r for r in ledger if r.charge.command == "embed"]
    assert embed_row.status == "error" and embed_row.amounts.tokens == 0


async def test_encodings_and_html_are_read_as_text(tmp_path: Path) -> None:
    latin = "Grüße aus Köln: Straße gesperrt, Ausweichroute über die Brücke".encode("latin-1")
    page = (
        b"<html><head><style>p{}</style><script>var x=1</script></head>"
        b"<body><h1>Status</h1><p>All systems &amp; services up</p></body></html>"
    )
    async with running_core(tmp_path) as core:
        await _ask(
            core,
            "summary?",
            _attach(core, "de.txt", latin),
            _attach(core, "s.html", page, "text/html"),
        )
        sent = _last_user_text(core)
    assert "Grüße aus Köln" in sent and "Brücke" in sent
    assert "All systems & services up" in sent and "var x" not in sent and "p{}" not in sent


async def test_a_file_earlier_in_the_thread_joins_a_follow_up(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        earlier = _attach(core, "deploy.yaml", b"replicas: 3\nimage: api:1.4.2\n")
        core.adapter.turns = [Turn("user", "here is the config", attachments=(earlier,))]
        await _ask(core, "which image version runs?")
        sent = _last_user_text(core)
        # Gone from the platform since: the follow-up is answered, with a note.
        core.adapter.files.clear()
        shown = await _ask(core, "and now?", thread="T2")
    assert "image: api:1.4.2" in sent
    assert "You said: and now?" in shown
    assert "Not used from earlier in the thread: `deploy.yaml` could not be fetched" in shown


async def test_a_file_sent_without_words_is_summed_up(tmp_path: Path) -> None:
    async with running_core(tmp_path) as core:
        await _ask(core, "", _attach(core, "todo.md", b"- ship it\n"))
        sent = _last_user_text(core)
    assert sent.startswith("Read the attached file") and "- ship it" in sent


def test_fixture_log_has_one_needle() -> None:
    data = big_log(100_000, NEEDLE).decode()
    assert data.count(NEEDLE) == 1
    json.dumps(data)  # plain text


async def test_embedding_tokens_are_held_against_the_quota_like_chat_tokens(
    tmp_path: Path,
) -> None:
    async with running_core(tmp_path) as core:
        await core.store.set_limit("memory:C1", "tokens", "day", 5000)
        shown = await _ask(core, QUESTION, _attach(core, "app.log", big_log(300_000, NEEDLE)))
        ledger = await core.store.ledger()
    assert shown.startswith("⚠️") and "token" in shown
    assert core.gateway.embedding_bodies() == [] and core.gateway.chat_bodies() == []
    assert [(r.charge.command, r.status) for r in ledger] == [("embed", "refused")]
