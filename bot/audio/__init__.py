"""Audio for transcription: identify, convert and split recordings with ffmpeg."""
