"""What every part of fedrisk uses and that has no domain meaning: the error hierarchy and
exit codes, CLI helpers, atomic writes, config files, JSON arrays, HTML report pieces,
child processes and TLS. It imports nothing else of fedrisk's (the layer rule below all
others; see README, Development)."""
