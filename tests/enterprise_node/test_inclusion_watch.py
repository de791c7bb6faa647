"""``join``'s automatic inclusion checks: a run is checked once the coordinator's ledger
records its end, once (again only if the node sent more in it, a resumed run), a failed
check is kept and not retried, and a service that does not answer is reported, not fatal."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from witness_world import WitnessWorld

from common.errors import ConfigError
from enterprise_node.inclusion import runs_to_check
from enterprise_node.inclusion_watch import InclusionWatch, watch_settings
from enterprise_node.witness import Witness
from ledger.client import LedgerClient
from ledger.records import RunEnded, RunResumed

pytestmark = pytest.mark.integration


@pytest.fixture
def world(tmp_path):
    w = WitnessWorld(tmp_path)
    yield w
    w.stop()


class Watch:
    """A watch on ``world``'s served ledger that counts its connections and what it said."""

    def __init__(self, world: WitnessWorld) -> None:
        self.world, self.connects, self.said = world, 0, []
        self.watch = InclusionWatch(
            world.config, self._connect, every_s=0.05, where="test", say=self.said.append
        )

    def _connect(self) -> LedgerClient:
        self.connects += 1
        return self.world.serve()


def test_a_run_is_checked_once_it_has_ended_and_only_once(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    w = Watch(world)
    assert w.watch.poll() == {}  # r1 has not ended: nothing checked, nothing recorded
    assert runs_to_check(world.config) == ["r1"]
    coord.append_many([RunEnded("r1", "completed", None)])
    verdicts = w.watch.poll()
    assert list(verdicts) == ["r1"] and verdicts["r1"].ok, verdicts
    assert runs_to_check(world.config) == []
    assert any("inclusion check of run r1: ok" in line for line in w.said), w.said
    connects = w.connects
    assert w.watch.poll() == {}
    assert w.connects == connects  # nothing left to check: the service is not asked


def test_a_resumed_run_is_checked_again_after_its_new_end(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    coord.append_many([RunEnded("r1", "failed", "the SuperLink went away")])
    w = Watch(world)
    assert w.watch.poll()["r1"].ok
    coord.append_many([RunResumed("r1", "plan", 2, 1, "abc")])
    world.exchange(coord, "r1", 2)
    assert runs_to_check(world.config) == ["r1"]
    assert w.watch.poll() == {}  # resumed: running again, not yet ended
    coord.append_many([RunEnded("r1", "completed", None)])
    again = w.watch.poll()["r1"]
    assert again.ok and len(again.checked_seqs) == 2, again


def test_a_failed_check_is_recorded_once_and_not_retried(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1, received=False)  # the coordinator hides the message
    coord.append_many([RunEnded("r1", "completed", None)])
    w = Watch(world)
    failed = w.watch.poll()["r1"]
    assert not failed.ok and "no entry" in failed.detail
    assert any("FAILED" in line for line in w.said)
    assert w.watch.poll() == {}  # judged: kept as evidence, not retried until it passes
    assert runs_to_check(world.config) == ["r1"]  # `verify-inclusion` by hand still can


def test_an_unreachable_service_is_reported_once_and_the_watch_stops_cleanly(world) -> None:
    coord = world.coordinator()
    world.exchange(coord, "r1", 1)
    said: list[str] = []
    key = world.key.public_key()
    watch = InclusionWatch(
        world.config,
        lambda: LedgerClient("127.0.0.1:9", key, timeout_s=0.5),
        every_s=0.05,
        where="127.0.0.1:9",
        say=said.append,
    ).start()
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    started = time.monotonic()
    watch.stop()
    assert time.monotonic() - started < 5
    assert len(said) == 1 and "did not answer (UNAVAILABLE" in said[0], said


def test_the_witness_state_has_one_checker_at_a_time(world) -> None:
    second_in = threading.Event()

    def second() -> None:
        with Witness.held(world.config, world.node_id):
            second_in.set()

    with Witness.held(world.config, world.node_id):
        other = threading.Thread(target=second)
        other.start()
        assert not second_in.wait(0.5)  # blocked while the first holds the lock
    other.join(timeout=10)
    assert second_in.is_set()


def test_join_options_need_both_the_service_and_the_key(world, tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    assert watch_settings(None, None, ca, 10.0) is None
    with pytest.raises(ConfigError, match="both --ledger-service and --coordinator-key"):
        watch_settings("localhost:1", None, ca, 10.0)
    with pytest.raises(ConfigError, match="both"):
        watch_settings(None, tmp_path / "k.pem", ca, 10.0)
    with pytest.raises(ConfigError, match="positive"):
        watch_settings("localhost:1", tmp_path / "k.pem", ca, 0)
    with pytest.raises(ConfigError):
        watch_settings("localhost:1", tmp_path / "missing.pem", ca, 10.0)
