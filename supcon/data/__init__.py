"""supcon.data."""
