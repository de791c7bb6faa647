"""fedrisk harness: every party played on one machine (synthetic factories, planted
defects, local federations, demos)."""
