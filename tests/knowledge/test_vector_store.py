"""Store contract for channel memory and the embedding cache, on every backend of the suite."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from storage.base import Passage
from storage.vectors import Vector, unit
from tests.test_store_contract import T0, Clock, MakeStore, make_store

__all__ = ["make_store"]

MODEL = "text-embedding-3-small"


def _v(*values: float) -> Vector:
    return unit(np.array(values, dtype=np.float32))


def _p(channel: str, message: str, text: str, part: int = 0, days: int = 0) -> Passage:
    return Passage(
        channel,
        message,
        part,
        text,
        "ada",
        T0 - timedelta(days=days),
        f"https://chat.example/{message}",
    )


async def test_memory_is_off_by_default_and_a_switch_persists(make_store: MakeStore) -> None:
    store = await make_store()
    assert await store.memory_channels() == set()
    assert not (await store.memory_status("slack:C1")).enabled
    await store.set_memory("slack:C1", True)
    await store.set_memory("slack:C2", True)
    await store.set_memory("slack:C2", False)
    again = await make_store()
    assert await again.memory_channels() == {"slack:C1"}
    assert (await again.memory_status("slack:C1")).enabled


async def test_search_is_exact_top_k_within_one_channel_and_one_model(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    await store.index_message(
        "slack:C1", "m1", [_p("slack:C1", "m1", "redis")], MODEL, [_v(1, 0, 0)]
    )
    await store.index_message(
        "slack:C1", "m2", [_p("slack:C1", "m2", "kafka")], MODEL, [_v(0, 1, 0)]
    )
    await store.index_message(
        "slack:C1", "m3", [_p("slack:C1", "m3", "both")], MODEL, [_v(1, 1, 0)]
    )
    # Nearer to the query than anything in C1, but another channel's and another model's.
    await store.index_message("slack:C2", "x", [_p("slack:C2", "x", "other")], MODEL, [_v(1, 0, 0)])
    await store.index_message(
        "slack:C1", "y", [_p("slack:C1", "y", "old")], "old-model", [_v(1, 0, 0)]
    )
    hits = await store.search_memory("slack:C1", MODEL, _v(1, 0.1, 0), 2)
    assert [h.passage.message_id for h in hits] == ["m1", "m3"]
    assert hits[0].score > hits[1].score and abs(hits[0].score - 0.995) < 0.01
    top = hits[0].passage
    assert (top.channel, top.text, top.author, top.link) == (
        "slack:C1",
        "redis",
        "ada",
        "https://chat.example/m1",
    )
    assert top.posted_at == T0
    assert await store.search_memory("slack:C9", MODEL, _v(1, 0, 0), 5) == []
    # Another dimension is another space: never scored against these vectors.
    assert await store.search_memory("slack:C1", MODEL, _v(1, 0, 0, 0), 5) == []


async def test_equal_scores_go_to_the_older_passage(make_store: MakeStore) -> None:
    store = await make_store()
    for name in ("a", "b", "c"):
        await store.index_message("d:1", name, [_p("d:1", name, name)], MODEL, [_v(0, 1)])
    hits = await store.search_memory("d:1", MODEL, _v(0, 1), 3)
    assert [h.passage.message_id for h in hits] == ["a", "b", "c"]


async def test_reindexing_a_message_replaces_it_and_forgetting_removes_it(
    make_store: MakeStore,
) -> None:
    store = await make_store()
    parts = [_p("s:C", "m1", "first", 0), _p("s:C", "m1", "second", 1)]
    await store.index_message("s:C", "m1", parts, MODEL, [_v(1, 0), _v(0, 1)])
    await store.index_message("s:C", "m2", [_p("s:C", "m2", "keep")], MODEL, [_v(1, 1)])
    assert [h.passage.text for h in await store.search_memory("s:C", MODEL, _v(1, 0), 1)] == [
        "first"
    ]
    await store.index_message("s:C", "m1", [_p("s:C", "m1", "edited")], MODEL, [_v(0, 1)])
    texts = {h.passage.text for h in await store.search_memory("s:C", MODEL, _v(1, 0), 5)}
    assert texts == {"edited", "keep"}
    status = await store.memory_status("s:C")
    assert (status.passages, status.messages, status.models) == (2, 2, (MODEL,))
    assert await store.forget_message("s:C", "m1") == 1
    assert await store.forget_message("s:C", "m1") == 0
    assert [h.passage.text for h in await store.search_memory("s:C", MODEL, _v(1, 0), 5)] == [
        "keep"
    ]
    assert await store.forget_memory("s:C") == 1
    assert await store.search_memory("s:C", MODEL, _v(1, 0), 5) == []
    assert (await store.memory_status("s:C")).passages == 0


async def test_a_search_sees_what_another_process_indexed(make_store: MakeStore) -> None:
    first = await make_store()
    second = await make_store()
    await first.index_message("s:C", "m1", [_p("s:C", "m1", "one")], MODEL, [_v(1, 0)])
    assert len(await first.search_memory("s:C", MODEL, _v(1, 0), 5)) == 1
    await second.index_message("s:C", "m2", [_p("s:C", "m2", "two")], MODEL, [_v(1, 0)])
    await second.forget_message("s:C", "m1")
    hits = await first.search_memory("s:C", MODEL, _v(1, 0), 5)
    assert [h.passage.text for h in hits] == ["two"]


async def test_retention_prunes_old_passages_and_unused_cache(make_store: MakeStore) -> None:
    clock = Clock()
    store = await make_store(clock=clock)
    await store.index_message("s:C", "old", [_p("s:C", "old", "old", days=100)], MODEL, [_v(1, 0)])
    await store.index_message("s:C", "new", [_p("s:C", "new", "new", days=-50)], MODEL, [_v(1, 0)])
    await store.cache_embeddings(MODEL, {"h-old": _v(1, 0)})
    clock.now = T0 + timedelta(days=100)
    await store.cache_embeddings(MODEL, {"h-new": _v(0, 1)})
    assert await store.prune_memory(T0 + timedelta(days=100) - timedelta(days=90)) == 1
    hits = await store.search_memory("s:C", MODEL, _v(1, 0), 5)
    assert [h.passage.message_id for h in hits] == ["new"]
    cached = await store.cached_embeddings(MODEL, ["h-old", "h-new", "h-none"])
    assert list(cached) == ["h-new"]
    assert np.allclose(cached["h-new"], _v(0, 1))


async def test_a_model_change_is_re_embedded_never_mixed(make_store: MakeStore) -> None:
    store = await make_store()
    await store.index_message("s:C", "m1", [_p("s:C", "m1", "one")], "old", [_v(1, 0, 0)])
    await store.index_message("s:C", "m2", [_p("s:C", "m2", "two")], MODEL, [_v(0, 1)])
    stale = await store.stale_passages("s:C", MODEL, 10)
    assert [p.text for p in stale] == ["one"]
    await store.revector(MODEL, {stale[0].id: _v(1, 0)})
    assert await store.stale_passages("s:C", MODEL, 10) == []
    hits = await store.search_memory("s:C", MODEL, _v(1, 0), 5)
    assert [h.passage.text for h in hits] == ["one", "two"]
    assert (await store.memory_status("s:C")).models == (MODEL,)


async def test_the_embedding_cache_is_per_model(make_store: MakeStore) -> None:
    store = await make_store()
    await store.cache_embeddings(MODEL, {"k": _v(1, 2, 3)})
    assert list(await store.cached_embeddings("other", ["k"])) == []
    found = await store.cached_embeddings(MODEL, ["k"])
    assert found["k"].dtype == np.float32 and np.allclose(found["k"], _v(1, 2, 3))


async def test_vectors_kept_between_searches_give_what_a_fresh_read_gives(
    make_store: MakeStore,
) -> None:
    # One process searches after every change (its vectors are kept and patched); another
    # reads the channel afresh each time: both must always agree.
    rng = np.random.default_rng(3)
    searching = await make_store()
    writing = await make_store()
    for step in range(40):
        name = f"m{step}"
        vector = unit(rng.standard_normal(8).astype(np.float32))
        await writing.index_message("s:C", name, [_p("s:C", name, name)], MODEL, [vector])
        if step % 3 == 0:
            await writing.forget_message("s:C", f"m{step // 2}")
        query = unit(rng.standard_normal(8).astype(np.float32))
        kept = await searching.search_memory("s:C", MODEL, query, 5)
        fresh = await (await make_store()).search_memory("s:C", MODEL, query, 5)
        assert [(h.passage.id, round(h.score, 5)) for h in kept] == [
            (h.passage.id, round(h.score, 5)) for h in fresh
        ]
