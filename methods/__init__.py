"""Methods, guidance encoders and the shared enhancement network."""
