"""`fedrisk-node join` copies the SuperNode's output to its own: into a log file or the
journal without terminal colour codes (Flower colours its log levels unconditionally),
and Flower's exit codes are still found in coloured lines."""

from __future__ import annotations

import sys
import time

import enterprise_node.supernode as supernode

COLOURED = (
    "print('\\x1b[92mINFO \\x1b[0m:      Starting Flower SuperNode'); "
    "print('\\x1b[91mERROR \\x1b[0m:     Exit Code: 302')"
)


def test_colour_codes_are_dropped_when_output_is_not_a_terminal(capsys, monkeypatch) -> None:
    # Prepare: the test process must not become a subreaper for orphans
    monkeypatch.setattr(supernode, "adopt_orphans", lambda: None)
    # Execute: pytest's captured stdout is not a terminal, as a log file is not
    process, codes = supernode._run_once([sys.executable, "-c", COLOURED], env={})
    process.wait(timeout=30)
    for _ in range(100):  # the copying thread may still be on its last line
        if codes:
            break
        time.sleep(0.05)
    out = capsys.readouterr().out
    # Assert
    assert "\x1b[" not in out
    assert "INFO :      Starting Flower SuperNode" in out
    assert codes == [302]
