"""fedrisk auditor package."""
