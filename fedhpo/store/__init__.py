"""fedhpo.store."""
