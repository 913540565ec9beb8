"""The price table: the shipped example, exact costs, and bad files stopping start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.governance.money import format_money, parse_money
from bot.governance.prices import PriceError, load_prices, parse_prices
from storage.base import Amounts, Rates
from tests.console_harness import run_console
from tests.fakes.gateway import CATALOGUE, FakeGateway

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "prices.example.toml"
CATALOGUE_IDS = [model for model, _ in CATALOGUE]


def test_the_example_prices_every_default_model_and_each_glob_matches_a_model() -> None:
    table = load_prices(str(EXAMPLE))
    assert table.currency == "USD"
    table.check_known(CATALOGUE_IDS)  # raises on a glob that matches nothing
    for model in ("gpt-4o-mini", "gpt-image-1", "whisper-1", "claude-sonnet-4-20250514"):
        assert table.price_of(model) is not None, model
    # First match wins: the transcription model is not priced as the chat model it extends.
    transcribe = table.rates("gpt-4o-mini-transcribe")
    assert transcribe is not None and (transcribe.audio_minute, transcribe.input) == (3000, 0)
    # A price per image by size and quality; the most specific entry wins.
    image = table.rates("gpt-image-1", size="1536x1024", quality="high")
    assert image is not None and image.image == 250_000
    assert table.rates("gpt-image-1", size="1024x1024", quality="low") == Rates("USD", image=11_000)
    assert table.rates("gpt-image-1") == Rates("USD", image=42_000)


def test_cost_is_exact_in_micro_units_and_rounds_up_once_per_request() -> None:
    rates = Rates("USD", input=150_000, output=600_000, image=40_000, audio_minute=6_000)
    # 1,000 in at 0.15/M and 500 out at 0.60/M: 0.00015 + 0.0003 dollars = 450 micro-dollars.
    assert rates.cost(Amounts(tokens_in=1000, tokens_out=500)) == 450
    # One token costs 0.15 micro-dollars: charged as one whole micro-unit, never as zero.
    assert rates.cost(Amounts(tokens_in=1)) == 1
    assert rates.cost(Amounts(images=3)) == 120_000
    assert rates.cost(Amounts(audio_seconds=90.5)) == 9_050
    # Sums of many small requests stay exact integers (no float drift in a bill).
    assert sum(rates.cost(Amounts(tokens_in=7, tokens_out=3)) for _ in range(10_000)) == 30_000


def test_money_is_parsed_and_shown_without_float_error() -> None:
    assert parse_money("5") == 5_000_000
    assert parse_money("$12.50") == 12_500_000
    assert parse_money("0.000001 USD") == 1
    assert parse_money("1,000") == 1_000_000_000
    for bad in ("-1", "five", "0.0000001", "1e3"):
        with pytest.raises(ValueError):
            parse_money(bad)
    assert format_money(12_345_678, "USD") == "12.35 USD"
    assert format_money(150, "USD") == "0.00015 USD"
    assert format_money(500_000, "EUR") == "0.50 EUR"
    assert format_money(0, "USD") == "0.00 USD"


BAD_FILES = [
    ('currency = "USD"\nfoo = 1\n[models."gpt-4o"]\ninput = 1\n', "unknown key 'foo' at the top"),
    (
        'currency = "USD"\n[models."gpt-4o"]\ninptu = 2.5\n',
        "[models.\"gpt-4o\"]: unknown key 'inptu'",
    ),
    (
        'currency = "USD"\n[models."gpt-4o"]\ninput = -2.5\n',
        '[models."gpt-4o"] input: -2.5 is negative',
    ),
    (
        'currency = "USD"\n[models."gpt-4o"]\noutput = "ten"\n',
        "[models.\"gpt-4o\"] output: 'ten' is not a number",
    ),
    ('currency = "USD"\n[models."gpt-4o"]\ninput = true\n', "input: True is not a number"),
    (
        'currency = "USD"\n[models."gpt-4o"]\ninput = 0.0000001\n',
        "input: 1E-7 has more than six decimals",
    ),
    ('[models."gpt-4o"]\ninput = 1\n', "currency must be a three-letter code"),
    ('currency = "USD"\n[models."gpt 4o"]\ninput = 1\n', '[models."gpt 4o"]: a model glob'),
    ('currency = "USD"\n[models."gpt-4o"]\n', '[models."gpt-4o"]: has no price'),
    (
        'currency = "USD"\n[models."gpt-image-1"]\nimage_by = { "huge" = 1 }\n',
        "image_by 'huge': name a size",
    ),
    ('currency = "USD"\nmodels = [1, 2]\n', "no [models."),
    ("currency = \n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "problem"), BAD_FILES)
def test_a_bad_price_file_is_one_line_naming_the_file_and_the_entry(
    text: str, problem: str
) -> None:
    with pytest.raises(PriceError) as info:
        parse_prices(text, "/etc/chatops/prices.toml")
    message = str(info.value)
    assert message.startswith("CHATOPS_PRICES: /etc/chatops/prices.toml: "), message
    assert problem in message
    assert "\n" not in message


def test_a_glob_that_matches_no_model_is_named() -> None:
    table = parse_prices(
        'currency = "USD"\n[models."gpt-4o*"]\ninput = 1\n[models."gtp-5*"]\ninput = 2\n', "p.toml"
    )
    with pytest.raises(PriceError) as info:
        table.check_known(CATALOGUE_IDS)
    assert str(info.value) == (
        'CHATOPS_PRICES: p.toml: [models."gtp-5*"] matches no model the gateway lists; '
        "fix the name or remove the entry"
    )


# --- start-up, as a real process ------------------------------------------------------------


async def test_bad_price_files_and_lists_stop_start_up_with_one_line(tmp_path: Path) -> None:
    negative = tmp_path / "negative.toml"
    negative.write_text('currency = "USD"\n[models."gpt-4o-mini*"]\ninput = -0.15\n')
    nothing = tmp_path / "nothing.toml"
    nothing.write_text(
        'currency = "USD"\n[models."gpt-4o-mini*"]\ninput = 0.15\n'
        '[models."gpt-image-1"]\nimage = 0.04\n[models."whisper-1"]\naudio_minute = 0.006\n'
        '[models."claude-9-*"]\ninput = 3\n'
    )
    async with FakeGateway() as fake:
        cases = [
            (
                {"CHATOPS_PRICES": str(negative)},
                f'CHATOPS_PRICES: {negative}: [models."gpt-4o-mini*"] input: -0.15 is negative',
            ),
            (
                {"CHATOPS_PRICES": str(nothing)},
                f'CHATOPS_PRICES: {nothing}: [models."claude-9-*"] matches no model the '
                "gateway lists; fix the name or remove the entry",
            ),
            (
                {"CHATOPS_PRICES": str(tmp_path / "missing.toml")},
                f"CHATOPS_PRICES: {tmp_path / 'missing.toml'}: cannot read the price file",
            ),
            (
                {"CHATOPS_MODELS_ALLOW": "deepseek-*"},
                "CHATOPS_DEFAULT_MODEL: 'gpt-4o-mini' is not allowed by CHATOPS_MODELS_ALLOW "
                "(deepseek-*); allow it or choose another default",
            ),
            (
                {"CHATOPS_MODELS_ALLOW": "gpt-4o*,gtp-4.1*"},
                "CHATOPS_MODELS_ALLOW: 'gtp-4.1*' matches no model the gateway lists",
            ),
            (
                {"CHATOPS_QUOTA_COST_MONTH": "50"},
                "CHATOPS_QUOTA_COST_MONTH: a spend limit needs a price table: set CHATOPS_PRICES",
            ),
        ]
        for env, expected in cases:
            run = await run_console(fake, tmp_path, "", env=env)
            status, lines = run.returncode, run.err.splitlines()
            assert status == 2, (env, lines)
            assert len(lines) == 1, lines
            assert lines[0].startswith(f"chatops: configuration error: {expected}"), lines[0]
        # A good file and list start the bot (it reads the model list once to check them).
        run = await run_console(
            fake,
            tmp_path,
            "",
            env={
                "CHATOPS_PRICES": str(EXAMPLE),
                "CHATOPS_MODELS_ALLOW": "gpt-4o*,deepseek-*,gpt-image-1,whisper-1",
                "CHATOPS_QUOTA_COST_MONTH": "50",
            },
        )
        status, lines = run.returncode, run.err.splitlines()
        assert status == 0, lines
        assert not any("error" in line.lower() for line in lines), lines


def test_config_errors_name_the_variable() -> None:
    from bot.governance.policy import policy_from_env

    with pytest.raises(ConfigError) as info:
        policy_from_env({"CHATOPS_BLOCKED_REPLY": "shout"})
    assert info.value.variable == "CHATOPS_BLOCKED_REPLY"
    with pytest.raises(ConfigError) as info:
        policy_from_env({"CHATOPS_DMS": "maybe"})
    assert info.value.variable == "CHATOPS_DMS"
    policy = policy_from_env(
        {"CHATOPS_CHANNELS_BLOCK": "general, #random C0123", "CHATOPS_MODELS_ALLOW": "gpt-4o*"}
    )
    assert policy.channels.block == ("general", "#random", "C0123")
    assert policy.models_allow == ("gpt-4o*",)
