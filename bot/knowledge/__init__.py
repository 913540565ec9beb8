"""Documents in the conversation and channel memory: extraction, chunks, embeddings, search."""
