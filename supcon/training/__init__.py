"""supcon.training."""
