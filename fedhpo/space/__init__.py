"""fedhpo.space."""
