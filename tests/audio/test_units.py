"""Pure parts of the audio pipeline: cut planning, silence parsing, magic bytes, limits."""

from __future__ import annotations

import itertools

import pytest

from bot.audio.formats import (
    M4A,
    MP4,
    OGG,
    WAV,
    accepted_format,
    describe,
    seeks_exactly,
    sniff,
)
from bot.audio.pipeline import AudioLimits, format_duration
from bot.audio.probe import last_out_time
from bot.audio.split import SLACK, parse_silences, plan_pieces
from bot.errors import ConfigError


def test_short_recording_is_one_piece() -> None:
    assert plan_pieces(42.0, [], 300) == [(0.0, 42.0)]
    # Measurement noise past the limit does not make another piece.
    assert len(plan_pieces(600.02, [], 300)) == 2


def test_without_silences_the_cuts_fall_back_to_even_fixed_lengths() -> None:
    cuts = [end for _, end in plan_pieces(25.0, [], 10)]
    assert cuts == pytest.approx([25 / 3, 50 / 3, 25.0])


def test_cuts_go_into_the_silence_nearest_an_even_split() -> None:
    # 20 s in pieces of at most 12: the even split is at 10; pauses at 6.5 and 11.
    pieces = plan_pieces(20.0, [(6.0, 7.0), (10.5, 11.5)], 12)
    assert pieces == [(0.0, 11.0), (11.0, 20.0)]


def test_silences_out_of_reach_are_ignored() -> None:
    # A pause at 1 s would make a tiny first piece; one at 15 s would make it too long.
    assert plan_pieces(20.0, [(0.9, 1.1), (14.9, 15.1)], 12) == [(0.0, 10.0), (10.0, 20.0)]


@pytest.mark.parametrize("duration", [10.5, 31.0, 299.0, 3601.0])
@pytest.mark.parametrize("max_piece", [10.0, 60.0, 300.0])
def test_pieces_cover_everything_in_order_and_respect_the_limit(
    duration: float, max_piece: float
) -> None:
    silences = [(float(t), t + 0.4) for t in range(3, int(duration), 7)]
    pieces = plan_pieces(duration, silences, max_piece)
    assert pieces[0][0] == 0.0 and pieces[-1][1] == duration
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert all(0 < end - start <= max_piece + SLACK for start, end in pieces)


def test_silencedetect_log_is_parsed_including_a_trailing_silence() -> None:
    log = (
        b"[silencedetect @ 0x5] silence_start: 3.52\n"
        b"[silencedetect @ 0x5] silence_end: 4.6 | silence_duration: 1.08\n"
        b"size=N/A time=00:00:09.00\n"
        b"[silencedetect @ 0x5] silence_start: -0.01\n"
        b"[silencedetect @ 0x5] silence_end: 0.5 | silence_duration: 0.51\n"
        b"[silencedetect @ 0x5] silence_start: 8.25\n"
    )
    assert parse_silences(log, 9.0) == [(3.52, 4.6), (0.0, 0.5), (8.25, 9.0)]


def test_progress_output_gives_the_last_time() -> None:
    out = b"out_time_us=-6500\nprogress=continue\nout_time_us=5413500\nprogress=end\n"
    assert last_out_time(out) == 5.4135
    assert last_out_time(b"out_time_us=N/A\nprogress=end\n") is None


@pytest.mark.parametrize(
    ("head", "label"),
    [
        (b"OggS\x00\x02" + bytes(20), "ogg"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "wav"),
        (b"fLaC\x00\x00\x00\x22", "flac"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00", "m4a"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "mp4"),
        (b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x00\x00", "3gp"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "matroska"),
        (b"FORM\x00\x01\x00\x00AIFFCOMM", "aiff"),
        (b"#!AMR\n\x3c", "amr"),
        (b"ID3\x04\x00\x00\x00\x00", "mp3"),
        (b"\xff\xfb\x90\x64\x00", "mp3"),
        (b"\xff\xf1\x50\x80", None),  # AAC in ADTS framing, not MP3
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"%PDF-1.7\n", "pdf"),
        (b"<!DOCTYPE html><html>", "html"),
        ("Grüße aus dem Büro\n".encode(), "text"),
        (bytes(range(256))[:64], None),
    ],
)
def test_sniff_reads_container_magic(head: bytes, label: str | None) -> None:
    assert sniff(head) == label


def test_only_indexed_containers_are_trusted_to_seek_exactly() -> None:
    assert seeks_exactly("ogg") and seeks_exactly("wav") and seeks_exactly("m4a")
    assert not seeks_exactly("mp3") and not seeks_exactly("amr") and not seeks_exactly(None)


def test_non_audio_labels_are_described() -> None:
    assert describe("png") == "a PNG image"
    assert describe("ogg") is None and describe(None) is None


def test_pass_through_needs_magic_ffprobe_and_codec_to_agree() -> None:
    mp4 = "mov,mp4,m4a,3gp,3g2,mj2"
    assert accepted_format("ogg", "ogg", "opus", False) == OGG
    assert accepted_format("ogg", "ogg", "speex", False) is None
    assert accepted_format("m4a", mp4, "aac", False) == M4A
    assert accepted_format("mp4", mp4, "aac", True) == MP4
    assert accepted_format("mov", mp4, "aac", False) is None
    assert accepted_format("3gp", mp4, "amr_nb", False) is None
    assert accepted_format("wav", "wav", "pcm_s16le", False) == WAV
    assert accepted_format("wav", "wav", "adpcm_ms", False) is None
    assert accepted_format(None, "mp3", "mp3", False) is None
    assert accepted_format("matroska", "matroska,webm", "opus", False) is None


def test_limits_from_an_empty_environment_are_the_defaults() -> None:
    assert AudioLimits.from_env({}) == AudioLimits()


def test_limits_from_the_environment(tmp_path: object) -> None:
    limits = AudioLimits.from_env(
        {
            "CHATOPS_AUDIO_MAX_DOWNLOAD_MB": "40",
            "CHATOPS_AUDIO_MAX_SECONDS": "1800",
            "CHATOPS_AUDIO_PIECE_SECONDS": "120",
            "CHATOPS_AUDIO_CONCURRENCY": "2",
            "CHATOPS_AUDIO_FORMAT": "MP3",
            "CHATOPS_AUDIO_TMPDIR": str(tmp_path),
        }
    )
    assert limits.max_download_bytes == 40_000_000
    assert (limits.max_duration_seconds, limits.max_piece_seconds) == (1800, 120)
    assert (limits.concurrency, limits.convert_format) == (2, "mp3")
    assert limits.temp_dir == str(tmp_path)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHATOPS_AUDIO_MAX_DOWNLOAD_MB", "lots"),
        ("CHATOPS_AUDIO_MAX_DOWNLOAD_MB", "0"),
        ("CHATOPS_AUDIO_CONCURRENCY", "100"),
        ("CHATOPS_AUDIO_PIECE_SECONDS", "nan"),
        ("CHATOPS_AUDIO_FORMAT", "wav"),
        ("CHATOPS_AUDIO_TMPDIR", "/nonexistent/scratch"),
    ],
)
def test_bad_limits_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        AudioLimits.from_env({variable: value})
    assert caught.value.variable == variable


def test_durations_read_like_a_clock() -> None:
    assert [format_duration(s) for s in (0.4, 7.4, 245, 3723)] == [
        "0:00",
        "0:07",
        "4:05",
        "1:02:03",
    ]
