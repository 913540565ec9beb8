"""Texts to unit vectors through the gateway: cached by content hash, charged to a channel."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bot.conversation import estimate_tokens
from bot.gateway.client import Gateway
from bot.quota.meter import metered
from storage.base import Amounts, Charge, Store
from storage.vectors import Vector, unit


def content_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


async def embed(
    store: Store, gateway: Gateway, model: str, texts: Sequence[str], charge: Charge
) -> list[Vector]:
    """One unit vector per text. Texts embedded before (by this model) come from the store's
    cache and cost nothing; the rest go to the gateway in one metered call (reserved on the
    estimate, settled with the tokens it reports). GatewayError and QuotaExceeded propagate."""
    keys = [content_key(text) for text in texts]
    known = await store.cached_embeddings(model, sorted(set(keys)))
    missing: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in known:
            missing.setdefault(key, text)
    if missing:
        pending = list(missing.values())
        estimate = Amounts(requests=1, tokens_in=sum(estimate_tokens(t) for t in pending))
        async with metered(store, charge, estimate) as meter:
            result = await gateway.embeddings(model, pending)
            meter.actual = Amounts(requests=1, tokens_in=result.tokens or estimate.tokens_in)
        fresh = {key: unit(v) for key, v in zip(missing, result.vectors, strict=True)}
        await store.cache_embeddings(model, fresh)
        known.update(fresh)
    return [known[key] for key in keys]
