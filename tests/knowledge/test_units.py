"""Extraction, chunking, configuration and the embeddings client against the fake gateway."""

from __future__ import annotations

import numpy as np
import pytest

from bot.errors import ConfigError
from bot.gateway.client import Gateway, GatewayError
from bot.knowledge.chunks import MAX_CHARS, chunk
from bot.knowledge.config import KnowledgeConfig
from bot.knowledge.extract import Document, Section, Unreadable, extract
from bot.secret import Secret
from tests.fakes.gateway import FakeGateway, hashed_embedding


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("naïve café".encode("utf-16"), "naïve café"),
        ("Grüße, Straße".encode("cp1252"), "Grüße, Straße"),
        ("日本語のログ: エラー発生".encode("shift_jis"), "エラー発生"),
        (b"ok line\nbad \xff\xfe byte\n" * 50, "ok line"),
    ],
)
def test_text_is_decoded_by_its_encoding_and_never_fails_on_bad_bytes(
    data: bytes, expected: str
) -> None:
    document = extract(data, "file.log")
    assert document.kind == "text" and expected in document.text


def test_an_unknown_name_is_judged_by_its_bytes() -> None:
    assert extract(b"key = value\n", "settings.conf").text == "key = value\n"
    with pytest.raises(Unreadable, match="gzip-compressed data"):
        extract(b"\x1f\x8b\x08\x00" + bytes(100), "dump.sql")


def test_chunks_keep_their_lines_and_cover_the_document() -> None:
    lines = [f"{n:05d} " + "x" * (40 + n % 50) for n in range(1, 2001)]
    lines[999] = ""  # a paragraph break
    lines[1500] = "y" * (3 * MAX_CHARS)  # one very long line
    text = "\n".join(lines)
    chunks = chunk(Document("a.log", "text", (Section(text),)))
    assert all(len(c.text) <= MAX_CHARS for c in chunks)
    assert chunks[0].first_line == 1 and chunks[-1].last_line == 2000
    for c in chunks:
        numbered = [ln for ln in c.text.splitlines() if ln[:5].isdigit()]
        if numbered:
            assert c.first_line <= int(numbered[0][:5]) <= int(numbered[-1][:5]) <= c.last_line
    assert "".join(c.text for c in chunks).count("y") == 3 * MAX_CHARS
    pages = chunk(Document("r.pdf", "PDF", (Section("one", 1), Section("two", 2))))
    assert [c.position for c in pages] == ["page 1, line 1", "page 2, line 1"]


def test_bad_knowledge_settings_name_their_variable() -> None:
    assert KnowledgeConfig.from_env({}) == KnowledgeConfig()
    for env in (
        {"CHATOPS_FILE_MAX_MB": "lots"},
        {"CHATOPS_MEMORY_RETENTION_DAYS": "1.5"},
        {"CHATOPS_EMBEDDING_MODEL": "text embedding"},
    ):
        with pytest.raises(ConfigError) as error:
            KnowledgeConfig.from_env(env)
        assert error.value.variable == next(iter(env))


async def test_embeddings_are_batched_in_order_and_failures_keep_the_taxonomy() -> None:
    async with FakeGateway() as fake:
        gateway = Gateway(fake.base_url, Secret(fake.api_key), retry_base=0.01)
        try:
            texts = [f"text number {n} about topic {n % 7}" for n in range(200)]
            result = await gateway.embeddings("text-embedding-3-small", texts, batch=64)
            assert len(fake.embedding_bodies()) == 4  # 64 + 64 + 64 + 8
            assert all(b["encoding_format"] == "base64" for b in fake.embedding_bodies())
            for text, vector in zip(texts, result.vectors, strict=True):
                assert np.allclose(vector, hashed_embedding(text), atol=1e-6)
            assert result.tokens == sum(len(t.split()) for t in texts)
            fake.fail_next(500, "server_error")  # retried, then fine
            again = await gateway.embeddings("text-embedding-3-small", ["one more"])
            assert len(again.vectors) == 1
            fake.fail_next(400, "invalid_request_error", times=5)
            with pytest.raises(GatewayError) as refused:
                await gateway.embeddings("text-embedding-3-small", texts, batch=64)
            assert refused.value.code == "invalid_request_error"
            fake.faults.clear()
            with pytest.raises(GatewayError) as unknown:
                await gateway.embeddings("no-such-embedder", ["x"])
            assert unknown.value.code == "model_not_found"
        finally:
            await gateway.aclose()
