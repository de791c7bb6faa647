"""fedrisk coordinator package."""
