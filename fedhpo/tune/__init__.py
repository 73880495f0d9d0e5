"""fedhpo.tune."""
