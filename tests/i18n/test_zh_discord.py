"""A zh-CN server against the fake Discord: no English sentence from the bot anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.commands.table import command_table
from bot.config import Config
from bot.dispatch import Dispatcher
from bot.gateway.client import Gateway
from bot.i18n import LanguageDefaults
from bot.secret import Secret
from bot.services import Services
from bot.streaming.budgets import Budgets
from storage.sqlite.store import SqliteStore
from tests.discord.test_e2e import FAST, SPEED
from tests.discord_harness import running
from tests.fakes.discord import GUILD_ID, OWNER_ID, FakeDiscord, FakeInteraction
from tests.fakes.gateway import FakeGateway
from tests.i18n.english import english_sentences

pytestmark = pytest.mark.timeout(60)
REPLY = "部署被数据库迁移阻塞了，预计明天完成。"


def answered(fake: FakeDiscord, fi: FakeInteraction) -> bool:
    original = fake.messages.get(fi.original_id or 0)
    return (original is not None and bool(original.content)) or bool(fi.followups)


async def test_a_zh_cn_server_hears_only_chinese_from_the_bot(tmp_path: Path) -> None:
    language = LanguageDefaults.from_env({"CHATOPS_LANGUAGE": f"{GUILD_ID}=zh-CN"})
    async with FakeDiscord(window=5.0 / SPEED) as fake, FakeGateway() as gw:
        gw.reply = REPLY
        config = Config(
            api_key=Secret(gw.api_key),
            base_url=gw.base_url,
            db_path=tmp_path / "chatops.db",
            language=language,
        )
        store = await SqliteStore.open(config.db_path)
        gateway = Gateway(config.base_url, config.api_key)
        dispatcher = Dispatcher(Services(config, gateway, store, Budgets()), command_table())
        try:
            async with running(
                fake,
                None,
                tmp_path,
                commands=command_table(),
                limits=FAST,
                wire=dispatcher.handler_for,
            ):
                # A question, answered with buttons; a 👍 on it.
                asked = await fake.send_message("部署进展如何？", mention_bot=True)
                await fake.wait_until(lambda: any(m.components for m in fake.replies_to(asked.id)))
                (reply,) = fake.replies_to(asked.id)
                up = reply.components[0]["components"][0]["custom_id"]
                clicked = await fake.click(reply, up)
                await fake.wait_until(lambda: answered(fake, clicked))
                # Views, refusals and errors, as slash commands and a mention.
                await fake.send_message("help", mention_bot=True)
                sent = [
                    await fake.send_interaction("quota"),
                    await fake.send_interaction("settings"),
                    await fake.send_interaction(
                        "model", [{"name": "name", "type": 3, "value": "no-such-model"}]
                    ),
                    await fake.send_interaction("translate"),
                    await fake.send_interaction(
                        "Translate", command_type=3, target=asked, locale="zh-CN"
                    ),
                ]
                await fake.wait_until(lambda: all(answered(fake, fi) for fi in sent))
                await fake.send_message("nonsense", author=OWNER_ID)  # not addressed: no answer
                await dispatcher.drain(10)
        finally:
            await gateway.aclose()
            await store.close()
    said = "\n".join(text for m in fake.bot_messages() for _, text in m.versions)
    assert REPLY in said and "本频道的配额" in said and "**命令**" in said
    assert "谢谢！很高兴能帮上忙。" in said
    assert english_sentences(said) == []
