"""fedrisk models package."""
