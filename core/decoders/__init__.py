"""Decoders from embeddings to media: image autoencoder and diffusion, sound diffusion and vocoder, captions."""
