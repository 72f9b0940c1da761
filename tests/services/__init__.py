"""Service-layer tests (fake call model, scripted transfer scenarios)."""
