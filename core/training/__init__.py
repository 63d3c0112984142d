"""Training stages; each is resumable (see the stage's module)."""
