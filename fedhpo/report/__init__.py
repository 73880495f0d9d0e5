"""fedhpo.report."""
