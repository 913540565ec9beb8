"""What the gateway's model list says about each model, and which vendor a model belongs to."""

from __future__ import annotations

from dataclasses import dataclass

VENDORS = ("openai", "anthropic", "google", "xai", "deepseek", "qwen", "moonshot", "other")

# Id prefixes first: multi-vendor gateways (one-api/new-api) often report one owned_by for all.
_ID_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("dall-e", "openai"),
    ("whisper", "openai"),
    ("tts-", "openai"),
    ("text-embedding", "openai"),
    ("omni-moderation", "openai"),
    ("davinci", "openai"),
    ("babbage", "openai"),
    ("codex", "openai"),
    ("claude", "anthropic"),
    ("gemini", "google"),
    ("gemma", "google"),
    ("imagen", "google"),
    ("veo", "google"),
    ("grok", "xai"),
    ("deepseek", "deepseek"),
    ("qwen", "qwen"),
    ("qwq", "qwen"),
    ("qvq", "qwen"),
    ("moonshot", "moonshot"),
    ("kimi", "moonshot"),
)
_OWNERS = {
    "openai": "openai",
    "openai-internal": "openai",
    "system": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "vertex-ai": "google",
    "vertexai": "google",
    "xai": "xai",
    "x-ai": "xai",
    "deepseek": "deepseek",
    "alibaba": "qwen",
    "aliyun": "qwen",
    "dashscope": "qwen",
    "qwen": "qwen",
    "moonshot": "moonshot",
    "moonshotai": "moonshot",
}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    owned_by: str
    vendor: str


def vendor_for(model_id: str, owned_by: str = "") -> str:
    """One of VENDORS, from the id (also `vendor/name` ids) and then from owned_by."""
    lowered = model_id.lower()
    prefix, _, name = lowered.rpartition("/")
    for candidate in (name, prefix):
        if not candidate:
            continue
        for start, vendor in _ID_PREFIXES:
            if candidate.startswith(start):
                return vendor
        if candidate in _OWNERS:
            return _OWNERS[candidate]
    return _OWNERS.get(owned_by.lower().strip(), "other")
