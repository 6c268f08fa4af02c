"""supcon.models."""
