"""The model gateway client: streamed chat, images, transcription, the model list, errors."""
