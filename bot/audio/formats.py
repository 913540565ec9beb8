"""Container magic bytes, and which (container, codec) pairs the gateway takes as they are."""

from __future__ import annotations

from dataclasses import dataclass

from bot.i18n import N_, t

# How many leading bytes `sniff` looks at.
HEAD_BYTES = 64


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """A format the gateway accepts: the extension it is uploaded under, and its MIME type."""

    name: str
    extension: str
    mime: str


OGG = AudioFormat("ogg", "ogg", "audio/ogg")
WEBM = AudioFormat("webm", "webm", "audio/webm")
M4A = AudioFormat("m4a", "m4a", "audio/mp4")
MP4 = AudioFormat("mp4", "mp4", "video/mp4")
MP3 = AudioFormat("mp3", "mp3", "audio/mpeg")
WAV = AudioFormat("wav", "wav", "audio/wav")
FLAC = AudioFormat("flac", "flac", "audio/flac")

# Codecs we trust the gateway to decode inside each accepted container; anything else
# (Speex in Ogg, ADPCM in WAV, ALAC in MP4) is converted rather than risked.
_WAV_CODECS = frozenset({"pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_u8"})
_MP4_BRANDS_AUDIO = frozenset({b"M4A ", b"M4B "})
_MP4_BRANDS = frozenset({b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"dash"})

_DESCRIPTIONS = {
    "png": N_("a PNG image"),
    "jpeg": N_("a JPEG image"),
    "gif": N_("a GIF image"),
    "webp": N_("a WebP image"),
    "pdf": N_("a PDF document"),
    "zip": N_("a ZIP archive or Office document"),
    "gzip": N_("a gzip archive"),
    "text": N_("a text file"),
    "html": N_("a web page"),
}


def sniff(head: bytes) -> str | None:
    """A short label for the container the leading bytes announce, or None if unknown."""
    if head.startswith(b"OggS"):
        return "ogg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"fLaC"):
        return "flac"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _MP4_BRANDS_AUDIO:
            return "m4a"
        if brand in _MP4_BRANDS:
            return "mp4"
        if brand.startswith(b"3g"):
            return "3gp"
        return "mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # The EBML header's DocType tells WebM from general Matroska.
        return "webm" if b"webm" in head else "matroska"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head.startswith(b"caff"):
        return "caf"
    if head.startswith(b"ID3") or _mp3_frame_sync(head):
        return "mp3"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return _text_kind(head)


def _mp3_frame_sync(head: bytes) -> bool:
    # 11 sync bits, and a layer field that is not 00 (00 is AAC in ADTS framing).
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06 != 0


def _text_kind(head: bytes) -> str | None:
    if not head or b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the head is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    if sum(ch.isprintable() or ch.isspace() for ch in text) < 0.95 * len(text):
        return None
    lowered = text.lstrip().lower()
    return "html" if lowered.startswith(("<!doctype html", "<html")) else "text"


def describe(label: str | None) -> str | None:
    """What a non-audio file is, in words ("a PNG image"), when the magic bytes tell."""
    found = _DESCRIPTIONS.get(label or "")
    return t(found) if found else None


def is_audio_container(label: str | None) -> bool:
    return label is not None and label not in _DESCRIPTIONS


# Containers with real timestamps or an exact index: seeking to 300.0 s lands on 300.0 s.
# MP3 (a 100-point table at best), raw AMR, ADTS AAC and unknown ones are estimated.
_EXACT_SEEK = frozenset(
    {"wav", "aiff", "flac", "ogg", "webm", "matroska", "m4a", "mp4", "mov", "3gp", "caf"}
)


def seeks_exactly(label: str | None) -> bool:
    return label in _EXACT_SEEK


def accepted_format(
    label: str | None, format_name: str, codec: str, has_video: bool
) -> AudioFormat | None:
    """The gateway format to pass this file through as, or None when it must be converted.

    Both the magic bytes and ffprobe must agree: ffprobe alone will call a low-scoring
    guess "mp3", and magic bytes alone say nothing about the codec inside.
    """
    demuxers = set(format_name.split(","))
    if label == "ogg" and "ogg" in demuxers and codec in ("opus", "vorbis", "flac"):
        return OGG
    if label == "webm" and "webm" in demuxers and codec in ("opus", "vorbis"):
        return WEBM
    if label in ("m4a", "mp4") and "mp4" in demuxers and codec in ("aac", "mp3"):
        return MP4 if has_video else M4A
    if label == "mp3" and demuxers == {"mp3"} and codec == "mp3":
        return MP3
    if label == "wav" and demuxers == {"wav"} and codec in _WAV_CODECS:
        return WAV
    if label == "flac" and demuxers == {"flac"} and codec == "flac":
        return FLAC
    return None
