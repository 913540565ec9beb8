"""Attached documents as part of a question: whole when they fit, else their nearest chunks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.context import Context
from bot.conversation import estimate_tokens
from bot.errors import TooLarge, UserFacingError
from bot.events import Attachment, Turn
from bot.gateway.client import GatewayError
from bot.i18n import nt, t
from bot.knowledge.chunks import Chunk, chunk
from bot.knowledge.embed import content_key, embed
from bot.knowledge.extract import Document, Unreadable, extract
from storage.base import Charge

log = logging.getLogger(__name__)

# Files from earlier in the thread that join a question (the newest first).
MAX_EARLIER_FILES = 3
# The share of CHATOPS_CONTEXT_TOKENS that attached documents may fill.
FILE_SHARE = 0.6
# Longest a document's text extraction may take (a pathological PDF).
EXTRACT_SECONDS = 60
# Tokens a document block's header and footer lines take.
_FRAME_TOKENS = 40


@dataclass(frozen=True, slots=True)
class FileContext:
    """What the documents add to a question, and lines telling the user what was used."""

    text: str = ""
    notes: tuple[str, ...] = ()


def file_budget(context_tokens: int, question: str, system_prompt: str | None) -> int:
    """Tokens the documents may take, after the question and the persona."""
    fixed = estimate_tokens(question) + (estimate_tokens(system_prompt) if system_prompt else 0)
    return max(0, int(context_tokens * FILE_SHARE) - fixed)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):,.1f} MB"


async def read_document(ctx: Context, attachment: Attachment) -> Document:
    """Download and extract one attachment; Unreadable says why it cannot be used."""
    cap = ctx.services.config.knowledge.file_max_bytes
    too_large = Unreadable(
        t(
            "`{name}` is {size}; I read files of up to {limit} (CHATOPS_FILE_MAX_MB). Send the "
            "part that matters.",
            name=attachment.filename,
            size=_megabytes(attachment.size),
            limit=_megabytes(cap),
        )
    )
    # The platform's declared size first, so an oversized file is never fetched at all.
    if attachment.size > cap:
        raise too_large
    try:
        data = await ctx.download(attachment, cap)
    except TooLarge:
        raise too_large from None
    try:
        async with asyncio.timeout(EXTRACT_SECONDS):
            return await asyncio.to_thread(extract, data, attachment.filename, attachment.mime)
    except TimeoutError:
        # The worker thread cannot be stopped, but the question need not wait for it.
        raise Unreadable(
            t(
                "I can't read `{name}`: getting its text took longer than {seconds} seconds. "
                "Send the part that matters as text.",
                name=attachment.filename,
                seconds=EXTRACT_SECONDS,
            )
        ) from None


async def files_context(
    ctx: Context, history: Sequence[Turn], question: str, budget: int
) -> FileContext:
    """The request's documents and the newest ones earlier in its thread, fitted to `budget`.

    A document attached to the request that cannot be read refuses the question (Unreadable);
    one from earlier in the thread is skipped with a note.
    """
    current = [a for a in ctx.req.attachments if a.kind == "file"]
    seen = {a.id for a in current}
    earlier: list[Attachment] = []
    for turn in reversed(history):
        for attachment in turn.attachments:
            if attachment.kind == "file" and attachment.id not in seen:
                seen.add(attachment.id)
                earlier.append(attachment)
    earlier = earlier[:MAX_EARLIER_FILES]
    if not current and not earlier:
        return FileContext()
    documents = [await read_document(ctx, a) for a in current]
    notes: list[str] = []
    for attachment in reversed(earlier):
        try:
            documents.insert(0, await read_document(ctx, attachment))
        except UserFacingError as skipped:
            notes.append(t("📎 Not used from earlier in the thread: {why}", why=skipped.message))
        except Exception as failed:  # context is best effort: a file gone since is skipped
            log.info("earlier file %s not fetched: %r", attachment.filename, failed)
            notes.append(
                t(
                    "📎 Not used from earlier in the thread: `{name}` could not be fetched again.",
                    name=attachment.filename,
                )
            )
    unique: dict[str, Document] = {}
    for document in documents:
        unique.setdefault(content_key(document.text), document)
    fitted = await _fit(ctx, list(unique.values()), question, budget)
    return FileContext(fitted.text, tuple(notes) + fitted.notes)


def _whole(document: Document) -> str:
    lines = document.text.count("\n") + 1
    return (
        f"--- Attached file `{document.name}` ({document.kind}, {lines:,} lines), in full ---\n"
        f"{document.text}\n--- End of `{document.name}` ---"
    )


def _parts(document: Document, chunks: Sequence[Chunk], why: str) -> str:
    body = "\n".join(f"[{c.position}]\n{c.text}" for c in sorted(chunks, key=lambda c: c.index))
    return (
        f"--- Attached file `{document.name}` ({document.kind}): {why} ---\n"
        f"{body}\n--- End of the parts of `{document.name}` ---"
    )


def _used(chunks: Sequence[Chunk]) -> str:
    ordered = sorted(chunks, key=lambda c: c.index)
    shown = ", ".join(c.position for c in ordered[:4])
    if len(ordered) <= 4:
        return shown
    return shown + nt(" and {n} more part", " and {n} more parts", len(ordered) - 4)


async def _fit(ctx: Context, documents: list[Document], question: str, budget: int) -> FileContext:
    sizes = [estimate_tokens(d.text) + _FRAME_TOKENS for d in documents]
    if sum(sizes) <= budget:
        return FileContext("\n\n" + "\n\n".join(_whole(d) for d in documents))
    # Small documents go whole while each fits an equal share; the rest share what is left.
    share = budget // len(documents)
    whole = [i for i, size in enumerate(sizes) if size <= share]
    large = [i for i, size in enumerate(sizes) if size > share]
    left = budget - sum(sizes[i] for i in whole) - _FRAME_TOKENS * len(large)
    blocks = [_whole(documents[i]) for i in whole]
    pieces = {i: chunk(documents[i]) for i in large}
    notes: list[str] = []
    try:
        chosen = await _nearest(ctx, pieces, question, left)
    except GatewayError as failed:
        log.warning("embedding attached files failed (%s); sending their beginnings", failed)
        each = left // len(large)
        chosen = {i: _beginning(pieces[i], each) for i in large}
        reason = "too large to read whole, here is its beginning"
        for i in large:
            notes.append(
                t(
                    "📎 `{name}` is too large to read whole, so only its beginning ({parts}) was "
                    "used: searching it failed. {why}",
                    name=documents[i].name,
                    parts=_used(chosen[i]),
                    why=failed.user_message(),
                )
            )
    else:
        reason = "too large to read whole; the parts nearest the question follow"
        for i in large:
            lines = documents[i].text.count("\n") + 1
            notes.append(
                nt(
                    "📎 `{name}` ({n} line) is too large to read whole; used the parts nearest "
                    "your question: {parts}",
                    "📎 `{name}` ({n} lines) is too large to read whole; used the parts nearest "
                    "your question: {parts}",
                    lines,
                    name=documents[i].name,
                    parts=_used(chosen[i]) or t("none fitted"),
                )
            )
    blocks += [_parts(documents[i], chosen[i], reason) for i in large]
    return FileContext("\n\n" + "\n\n".join(blocks), tuple(notes))


def _cost(piece: Chunk) -> int:
    return estimate_tokens(piece.text) + 8  # and its position line


def _beginning(chunks: Sequence[Chunk], budget: int) -> list[Chunk]:
    taken: list[Chunk] = []
    used = 0
    for piece in chunks:
        if used + _cost(piece) > budget:
            break
        taken.append(piece)
        used += _cost(piece)
    if not taken and chunks:
        taken = [_cut(chunks[0], budget)]
    return taken


def _cut(piece: Chunk, budget: int) -> Chunk:
    """A chunk shortened to about `budget` tokens (when not even one whole chunk fits)."""
    keep = max(200, budget * 4)
    if len(piece.text) <= keep:
        return piece
    text = piece.text[:keep]
    last = piece.first_line + text.count("\n")
    return Chunk(piece.name, text, piece.first_line, last, piece.page, piece.index)


async def _nearest(
    ctx: Context, pieces: dict[int, list[Chunk]], question: str, budget: int
) -> dict[int, list[Chunk]]:
    """Per document, its chunks nearest the question that together fit `budget` (embedding
    them, charged to the channel)."""
    place, user = ctx.req.place, ctx.req.user
    model = ctx.services.config.knowledge.embedding_model
    # Part of the question it serves: its tokens are charged, not another request.
    charge = Charge(
        place.platform, place.channel_key, user.id, "embed", model, user.name, follow_up=True
    )
    owners = [(i, piece) for i, chunks in pieces.items() for piece in chunks]
    vectors = await embed(
        ctx.services.store,
        ctx.services.gateway,
        model,
        [piece.text for _, piece in owners] + [question or "summary"],
        charge,
    )
    scores = np.stack(vectors[:-1]) @ vectors[-1]
    # Equal scores go to the earlier part of the file.
    order = np.lexsort((np.arange(len(owners)), -scores))
    chosen: dict[int, list[Chunk]] = {i: [] for i in pieces}
    used = 0
    for index in order:
        owner, piece = owners[int(index)]
        if used + _cost(piece) <= budget:
            chosen[owner].append(piece)
            used += _cost(piece)
        if budget - used < 64:
            break
    if not any(chosen.values()) and owners:
        owner, piece = owners[int(order[0])]
        chosen[owner] = [_cut(piece, budget)]
    return chosen
