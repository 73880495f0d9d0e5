"""fedhpo.cli."""
