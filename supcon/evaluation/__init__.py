"""supcon.evaluation."""
