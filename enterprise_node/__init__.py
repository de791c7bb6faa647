"""fedrisk enterprise_node package."""
