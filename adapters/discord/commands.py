"""The application command tree: one slash command per core command, and when to sync it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import discord
from discord import app_commands

from adapters.discord.events import place_of
from bot.commands import Command
from bot.events import Place

log = logging.getLogger(__name__)

# The model ids a place may use (its allow-list applied), for autocomplete.
ModelsSource = Callable[[Place], Awaitable[Sequence[str]]]


class OnCommand(Protocol):
    """(interaction, core command name, argument text, attachments, the message a context
    menu was used on) → the adapter takes it from here."""

    def __call__(
        self,
        interaction: discord.Interaction[Any],
        name: str,
        text: str,
        attachments: Sequence[discord.Attachment],
        target: discord.Message | None = None,
    ) -> Awaitable[None]: ...


IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
IMAGE_QUALITIES = ("auto", "low", "medium", "high")
TRANSCRIBE_MENU = "Transcribe"
# Message context menus that run a core command on the message (name → command).
MESSAGE_MENUS = {"Summarize": "summarize", "Translate": "translate"}
_MAX_CHOICES = 25  # Discord's autocomplete limit


def _describe(command: Command) -> str:
    text = command.summary.replace("`", "")
    return text if len(text) <= 100 else text[:99] + "…"


def _join(*parts: object) -> str:
    return " ".join(str(p) for p in parts if p not in (None, ""))


def model_autocomplete(
    models: ModelsSource | None,
) -> Callable[[discord.Interaction[Any], str], Coroutine[Any, Any, list[app_commands.Choice[str]]]]:
    async def complete(
        interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        if models is None or interaction.channel is None:
            return []
        try:
            names = await models(place_of(interaction.channel, interaction.guild))
        except Exception as exc:  # autocomplete must answer; an empty list is an answer
            log.warning("model autocomplete could not list models: %s", exc)
            return []
        needle = current.lower()
        hits = [n for n in names if needle in n.lower()]
        # Prefix matches first: what the user is typing is usually the start of the id.
        hits.sort(key=lambda n: (not n.lower().startswith(needle), n))
        return [app_commands.Choice(name=n[:100], value=n[:100]) for n in hits[:_MAX_CHOICES]]

    return complete


def _ask(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    @app_commands.describe(prompt="Your question", image="An image for vision models")
    async def ask(
        interaction: discord.Interaction[Any], prompt: str, image: discord.Attachment | None = None
    ) -> None:
        await run(interaction, cmd.name, prompt, [image] if image else [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=ask)


def _image(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    @app_commands.describe(
        prompt="What to draw",
        size="Width x height",
        quality="Rendering quality",
        count="How many images (1-4)",
        model="Image model (default: the service's)",
    )
    @app_commands.choices(
        size=[app_commands.Choice(name=s, value=s) for s in IMAGE_SIZES],
        quality=[app_commands.Choice(name=q, value=q) for q in IMAGE_QUALITIES],
    )
    @app_commands.autocomplete(model=model_autocomplete(models))
    async def image(
        interaction: discord.Interaction[Any],
        prompt: str,
        size: str | None = None,
        quality: str | None = None,
        count: app_commands.Range[int, 1, 4] | None = None,
        model: str | None = None,
    ) -> None:
        options = _join(
            f"size={size}" if size else "",
            f"quality={quality}" if quality else "",
            f"n={count}" if count else "",
            f"model={model}" if model else "",
        )
        await run(interaction, cmd.name, _join(options, prompt), [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=image)


def _transcribe(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    @app_commands.describe(file="An audio or video file", language="Spoken language, e.g. en")
    async def transcribe(
        interaction: discord.Interaction[Any],
        file: discord.Attachment,
        language: str | None = None,
    ) -> None:
        await run(interaction, cmd.name, language or "", [file])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=transcribe)


def _models(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    @app_commands.describe(filter="Only models whose id contains this", page="Page number")
    async def list_models(
        interaction: discord.Interaction[Any],
        filter: str | None = None,
        page: app_commands.Range[int, 1, 100] | None = None,
    ) -> None:
        await run(interaction, cmd.name, _join(filter, page), [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=list_models)


def _model(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    @app_commands.describe(name="Model id to use in this channel, or 'default'")
    @app_commands.autocomplete(name=model_autocomplete(models))
    async def model(interaction: discord.Interaction[Any], name: str | None = None) -> None:
        await run(interaction, cmd.name, name or "", [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=model)


def _summarize(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    @app_commands.describe(
        count="The channel's latest N messages (default: this thread, or the last 50)",
        share="Post it for everyone in the channel (default: only you see it)",
    )
    async def summarize(
        interaction: discord.Interaction[Any],
        count: app_commands.Range[int, 1, 500] | None = None,
        share: bool = False,
    ) -> None:
        await run(interaction, cmd.name, _join(count, "share" if share else ""), [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=summarize)


def _translate(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    @app_commands.describe(
        text="What to translate (default: the message before)",
        language="Into which language, e.g. French or ja (default: yours)",
        share="Post it for everyone in the channel (default: only you see it)",
    )
    async def translate(
        interaction: discord.Interaction[Any],
        text: str | None = None,
        language: str | None = None,
        share: bool = False,
    ) -> None:
        # "to" keeps a language code such as "it" from reading as a word of the text.
        target = f"to {language}" if language else ""
        await run(interaction, cmd.name, _join("share" if share else "", target, text), [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=translate)


def _plain(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    """Commands without a typed shape here take their usual text after the name."""

    @app_commands.describe(arguments=cmd.usage[:100])
    async def plain(interaction: discord.Interaction[Any], arguments: str | None = None) -> None:
        await run(interaction, cmd.name, arguments or "", [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=plain)


def _bare(
    cmd: Command, run: OnCommand, models: ModelsSource | None
) -> app_commands.Command[Any, ..., None]:
    async def bare(interaction: discord.Interaction[Any]) -> None:
        await run(interaction, cmd.name, "", [])

    return app_commands.Command(name=cmd.name, description=_describe(cmd), callback=bare)


_SHAPES = {
    "ask": _ask,
    "image": _image,
    "transcribe": _transcribe,
    "models": _models,
    "model": _model,
    "summarize": _summarize,
    "translate": _translate,
    "help": _bare,
    "quota": _bare,
}


def build_tree(
    client: discord.Client,
    table: Mapping[str, Command],
    run: OnCommand,
    models: ModelsSource | None,
) -> app_commands.CommandTree[Any]:
    """A slash command per core command (aliases skipped) plus the "Transcribe" message menu."""
    tree: app_commands.CommandTree[Any] = app_commands.CommandTree(client)
    for name, cmd in table.items():
        if name != cmd.name or cmd.hidden:
            continue  # an alias (e.g. chat → ask): one slash command is enough
        shape = _SHAPES.get(name, _plain)
        tree.add_command(shape(cmd, run, models))
    if "transcribe" in table:

        async def transcribe_message(
            interaction: discord.Interaction[Any], message: discord.Message
        ) -> None:
            await run(interaction, "transcribe", "", list(message.attachments))

        tree.add_command(
            app_commands.ContextMenu(name=TRANSCRIBE_MENU, callback=transcribe_message)
        )
    for menu, command in MESSAGE_MENUS.items():
        if command in table:
            tree.add_command(
                app_commands.ContextMenu(name=menu, callback=_on_message(run, command))
            )
    return tree


def _on_message(
    run: OnCommand, command: str
) -> Callable[[discord.Interaction[Any], discord.Message], Coroutine[Any, Any, None]]:
    async def on_message(interaction: discord.Interaction[Any], message: discord.Message) -> None:
        await run(interaction, command, "", [], message)

    return on_message


def command_hash(tree: app_commands.CommandTree[Any], guilds: Sequence[int] = ()) -> str:
    """A digest of exactly what sync would send, so any change in it triggers a sync."""
    payload = sorted(
        (c.to_dict(tree) for c in tree.get_commands()),
        key=lambda d: (d.get("type", 1), d["name"]),
    )
    blob = json.dumps({"commands": payload, "guilds": sorted(guilds)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


async def sync_if_changed(
    tree: app_commands.CommandTree[Any],
    application_id: int,
    state_dir: Path,
    guilds: Sequence[int] = (),
) -> bool:
    """Sync when the command set differs from the last synced one; True when it synced.

    Global command updates are rate limited (200 creates a day per application) and take
    a while to reach clients, so a restart with the same commands must not re-sync.
    """
    digest = command_hash(tree, guilds)
    marker = state_dir / f"discord-commands-{application_id}.sha256"
    if await asyncio.to_thread(_read_marker, marker) == digest:
        log.info("application commands unchanged (%s…); not syncing", digest[:12])
        return False
    await tree.sync()
    for guild_id in guilds:
        guild = discord.Object(id=guild_id)
        tree.copy_global_to(guild=guild)
        await tree.sync(guild=guild)
    # Written only after Discord accepted the sync, so a failed sync is retried next start.
    await asyncio.to_thread(_write_marker, marker, digest)
    log.info("synced %d application commands (%s…)", len(tree.get_commands()), digest[:12])
    return True


def _read_marker(marker: Path) -> str | None:
    try:
        return marker.read_text().strip()
    except OSError:
        return None


def _write_marker(marker: Path, digest: str) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(digest + "\n")
    tmp.replace(marker)
