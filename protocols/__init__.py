"""fedrisk protocols package."""
