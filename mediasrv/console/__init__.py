"""The console endpoint: the machine's sound card as an extension (optional `console` extra)."""
