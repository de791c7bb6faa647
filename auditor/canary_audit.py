"""`fedrisk-audit canary`: a one-run privacy audit of a test federation, in two steps.

1. ``plant``: the auditor draws m canaries for the federation's plan (coins from the OS's
   entropy) and hands the broker the audit's model spec and the canary enterprises' data
   (only the canaries that were flipped in, plus censored filler units that make every
   canary enterprise a contributor to every canary segment). The coins stay in
   ``private/plant.json`` (0600).
2. ``score``: after the broker ran the federation on that spec with the canary
   enterprises, the auditor reads the run from the coordinator's signed ledger (verified
   with the coordinator's public key): the run over the plant's spec, the digests of its
   published ``curves.json`` and ``global_model.npz`` (the files scored must be those),
   and every release the coordinator accounted (its noise, RDP-composed at the plan's
   delta: the claims). It scores every canary from those outputs alone, bounds epsilon
   for the curves and the model (:mod:`auditor.canary_bound`) and sets the bounds beside
   the claims. A bound above its claim breaks the claim (exit 51). The result goes into a
   report (Markdown, HTML, JSON, score histograms) and into the auditor's own ledger
   (:mod:`auditor.canary_report`).

Like the rest of the auditor, nothing here imports the parties' code: what it knows of a
run comes from the ledger and the published files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from auditor.canaries import (
    CANARY_FEATURE,
    CANARY_SEGMENT_PREFIX,
    NO_CANARY,
    CanaryPlant,
    canary_units,
    load_plant,
    plant_canaries,
    save_plant,
)
from auditor.canary_bound import AuditBound, one_run_bound
from auditor.canary_scores import curve_scores, model_scores
from common.atomic import atomic_write_json, atomic_write_text
from common.errors import ConfigError, StateError
from ledger.log import read_ledger
from ledger.records import (
    OutputsPublished,
    ReleaseAccounted,
    RunEnded,
    RunStarted,
    record_from_entry,
)
from ledger.signing import (
    load_public_key,
)
from ledger.verification import verify_ledger
from models.curves import curves_from_json
from models.model_file import arrays_from_npz
from models.spec import ModelSpec
from privacy.accounting import Spend, rdp_epsilon
from protocols.plan import model_spec_in

__all__ = [
    "CANARY_SITES",
    "FILLERS",
    "PLANT_FILE",
    "CanaryAuditResult",
    "plant_audit",
    "canary_sites",
    "read_federation_plan",
    "RunRecord",
    "run_from_ledger",
    "claimed_epsilons",
    "score_run",
    "load_audit_plant",
    "plant_file",
]

#: Canary enterprises: every canary segment then has the contributors curves need.
CANARY_SITES = 3
#: Censored filler units per canary segment at each canary enterprise.
FILLERS = 40
#: Where ``plant`` keeps the coins, under its output folder.
PLANT_FILE = Path("private") / "plant.json"


@dataclass(frozen=True)
class CanaryAuditResult:
    """The audit of run ``run_id``: bounds and claims for the curves and the model, the
    scores behind them (canary order) and the coins."""

    run_id: str
    model_spec_digest: str
    curve: AuditBound
    model: AuditBound
    curve_claimed: float | None
    model_claimed: float | None
    curve_scores: tuple[float, ...]
    model_scores: tuple[float, ...]
    included: tuple[bool, ...]

    @property
    def broken(self) -> list[str]:
        """The parts whose bound exceeds what the run claims for them."""
        parts = (
            ("curves", self.curve, self.curve_claimed),
            ("model", self.model, self.model_claimed),
        )
        return [name for name, bound, claim in parts if claim is not None and bound.epsilon > claim]

    @property
    def verdict(self) -> str:
        return "claims broken" if self.broken else "claims hold"

    def to_dict(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "model_spec_digest": self.model_spec_digest,
            "verdict": self.verdict,
            "broken": self.broken,
            "curve": {"bound": asdict(self.curve), "claimed": self.curve_claimed},
            "model": {"bound": asdict(self.model), "claimed": self.model_claimed},
            "scores": {
                "curve": [None if not np.isfinite(x) else x for x in self.curve_scores],
                "model": list(self.model_scores),
                "included": list(self.included),
            },
        }


# -- plant ---------------------------------------------------------------------------------


def plant_audit(
    spec: ModelSpec,
    m: int,
    out_dir: Path,
    *,
    seed: int | None = None,
    config: dict | None = None,
) -> CanaryPlant:
    """Draw the canaries and write what the broker gets (``model_spec.json``,
    ``canary-sites/`` and, given the federation's coordinator.yaml as read (``config``),
    the test federation's ``coordinator.yaml``) and what the auditor keeps
    (``private/plant.json``)."""
    out_dir = Path(out_dir)
    if (out_dir / PLANT_FILE).exists():
        raise ConfigError(f"{out_dir / PLANT_FILE} exists: one plant per audit, never redrawn")
    plant = plant_canaries(spec, m, seed=seed)
    save_plant(plant, out_dir / PLANT_FILE)
    atomic_write_json(out_dir / "model_spec.json", plant.spec.model_dump(mode="json"))
    for k, units in enumerate(canary_sites(plant), start=1):
        _write_site(out_dir / "canary-sites" / f"canary-{k:02d}", units, plant)
    if config is not None:
        _write_test_config(out_dir / "coordinator.yaml", config, plant.spec)
    return plant


def _write_test_config(path: Path, config: dict, spec: ModelSpec) -> None:
    """The federation's coordinator.yaml on the audit's spec, every curve published
    whatever its failure count (a canary segment has one failure per interval at most;
    publication is not a privacy rule, and a withheld curve tells the audit nothing)."""
    test = {**config, "plan": {**config["plan"], "model_spec": spec.model_dump(mode="json")}}
    test["curves"] = {**(test.get("curves") or {}), "min_failures": 0}
    header = (
        "# the test federation of a canary audit (fedrisk-audit canary plant): the plan of\n"
        "# the federation with the audit's model spec; run it with the canary sites only\n"
    )
    atomic_write_text(path, header + yaml.safe_dump(test, sort_keys=False))


def read_federation_plan(path: Path) -> tuple[ModelSpec, dict | None]:
    """The model spec of a coordinator.yaml (``plan.model_spec``), a plan (``model_spec``)
    or a bare spec, and the whole document when it is a coordinator.yaml; ConfigError
    naming the file otherwise."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the plan: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a coordinator.yaml, a plan or a model spec")
    whole = isinstance(data.get("plan"), dict) and "federation" in data
    return model_spec_in(data, str(path)), data if whole else None


def canary_sites(plant: CanaryPlant) -> list[pd.DataFrame]:
    """The included canaries dealt round-robin to :data:`CANARY_SITES` enterprises, each
    with :data:`FILLERS` filler units per canary segment, censored past the horizon (they
    fill no canary's exit cell)."""
    canaries = canary_units(plant)
    template = canary_units(plant, only_included=False).iloc[:1]
    segments = [s for s in plant.spec.segments if s.startswith(CANARY_SEGMENT_PREFIX)]
    sites = []
    for k in range(CANARY_SITES):
        fillers = pd.concat([template] * (FILLERS * len(segments)), ignore_index=True)
        fillers["unit_id"] = [f"filler-{k}-{i:05d}" for i in range(len(fillers))]
        fillers["segment"] = np.repeat(segments, FILLERS)
        fillers["duration"] = plant.spec.time_grid.horizon * 2.0
        fillers["failed"] = 0
        fillers[CANARY_FEATURE] = NO_CANARY
        sites.append(pd.concat([canaries.iloc[k::CANARY_SITES], fillers], ignore_index=True))
    return sites


def _write_site(folder: Path, units: pd.DataFrame, plant: CanaryPlant) -> None:
    """units.csv and a node.yaml that declares every canary segment."""
    spec = plant.spec
    columns = ["unit_id", "segment", "equipment_class", "duration", "failed"]
    atomic_write_text(
        folder / "units.csv", units[[*columns, *spec.feature_names]].to_csv(index=False)
    )
    segments = [s for s in spec.segments if s.startswith(CANARY_SEGMENT_PREFIX)]
    document = {
        "node": {"name": folder.name, "segments": segments},
        "data": {
            "path": "units.csv",
            "columns": {
                **{c: c for c in columns},
                "covariates": {f: f for f in spec.feature_names},
            },
            "max_bad_fraction": 0.0,
        },
        "privacy": {"epsilon": 100.0, "delta": 1e-5},
    }
    header = "# canary enterprise of a fedrisk privacy audit (fedrisk-audit canary plant)\n"
    atomic_write_text(folder / "node.yaml", header + yaml.safe_dump(document, sort_keys=False))


# -- score ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """What the coordinator's ledger says of one run: its start, its published outputs
    and the releases it accounted."""

    started: RunStarted
    outputs: OutputsPublished
    releases: tuple[ReleaseAccounted, ...]


def run_from_ledger(
    ledger_dir: Path, coordinator_key: Path, spec: ModelSpec, run_id: str | None = None
) -> RunRecord:
    """The completed run over ``spec`` (the last one, or ``run_id``) in the coordinator's
    ledger, after verifying it with the coordinator's public key; StateError otherwise."""
    contents = read_ledger(Path(ledger_dir))
    report = verify_ledger(
        contents, load_public_key(Path(coordinator_key)), ledger_id="coordinator"
    )
    if report.errors:
        raise StateError(
            f"{ledger_dir}: the coordinator's ledger does not verify: {report.errors[0]}"
        )
    records = [record_from_entry(entry) for entry in contents.entries()]
    runs = [
        r
        for r in records
        if isinstance(r, RunStarted)
        and r.model_spec_digest == spec.digest
        and (run_id is None or r.run_id == run_id)
    ]
    completed = {r.run_id for r in records if isinstance(r, RunEnded) and r.status == "completed"}
    runs = [r for r in runs if r.run_id in completed]
    if not runs:
        named = "" if run_id is None else f" named {run_id}"
        raise StateError(
            f"{ledger_dir}: no completed run{named} over the audit's model spec "
            f"({spec.digest[:12]}): run the federation on the plant's model_spec.json"
        )
    started = runs[-1]
    outputs = [r for r in records if isinstance(r, OutputsPublished) and r.run_id == started.run_id]
    if not outputs:
        raise StateError(f"{ledger_dir}: run {started.run_id} published no outputs")
    releases = tuple(
        r for r in records if isinstance(r, ReleaseAccounted) and r.run_id == started.run_id
    )
    return RunRecord(started, outputs[-1], releases)


def claimed_epsilons(run: RunRecord) -> tuple[float | None, float | None]:
    """(curve, model) epsilon the coordinator accounted for the run, each alone, the
    largest over nodes (RDP composition of each node's releases at the plan's delta);
    None when record-level DP was off (no release accounted)."""
    if not run.releases:
        return None, None
    delta = run.started.record_delta
    spends: dict[tuple[str, str], list[Spend]] = {}
    for r in run.releases:
        part = "curve" if r.task == "curve" else "model"
        spend = Spend(r.noise_multiplier, r.sample_rate, r.steps, r.mechanism)
        spends.setdefault((r.node, part), []).append(spend)
    claims = {"curve": 0.0, "model": 0.0}
    for (_node, part), node_spends in spends.items():
        claims[part] = max(claims[part], rdp_epsilon(node_spends, delta))
    return claims["curve"], claims["model"]


def score_run(run_dir: Path, plant: CanaryPlant, run: RunRecord) -> CanaryAuditResult:
    """Score the canaries from ``run_dir``'s published outputs, checked against the
    digests the coordinator signed, and bound epsilon at the plan's delta."""
    run_dir = Path(run_dir)
    curves_path, model_path = run_dir / "curves.json", run_dir / "global_model.npz"
    # each file is read once: the bytes whose digest is checked are the bytes scored
    curves = _published(curves_path, run.outputs.curves_sha256)
    model_bytes = _published(model_path, run.outputs.model_sha256)
    curve_claimed, model_claimed = claimed_epsilons(run)
    delta = run.started.record_delta
    curve = _read(curves_path, lambda: curve_scores(curves_from_json(curves), plant))
    model = _read(model_path, lambda: model_scores(arrays_from_npz(model_bytes), plant))
    inside = plant.included
    return CanaryAuditResult(
        run_id=run.started.run_id,
        model_spec_digest=plant.spec.digest,
        curve=one_run_bound(curve[inside], curve[~inside], delta=delta),
        model=one_run_bound(model[inside], model[~inside], delta=delta),
        curve_claimed=curve_claimed,
        model_claimed=model_claimed,
        curve_scores=tuple(float(x) for x in curve),
        model_scores=tuple(float(x) for x in model),
        included=tuple(bool(x) for x in inside),
    )


def _published(path: Path, expected: str | None) -> bytes:
    """The bytes of ``path``; StateError unless they are the file the coordinator's
    ledger names for the run."""
    if expected is None:
        raise StateError(f"{path.name}: the run's ledger records no such output")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StateError(f"{path}: not found; give the run directory of the audited run") from None
    except OSError as err:
        raise StateError(f"{path}: cannot be read: {err}") from None
    if hashlib.sha256(data).hexdigest() != expected:
        raise StateError(
            f"{path}: its SHA-256 is not the one the coordinator's ledger records for the "
            "run: these are not the outputs the run published"
        )
    return data


def plant_file(path: Path) -> Path:
    """The plant file at ``path``: the file itself, or the one in the folder ``plant``
    wrote."""
    path = Path(path)
    return path / PLANT_FILE if path.is_dir() else path


def load_audit_plant(path: Path) -> CanaryPlant:
    """The plant at ``path`` (a plant file or the folder ``plant`` wrote)."""
    return load_plant(plant_file(path))


def _read(path: Path, score: Callable[[], np.ndarray]) -> np.ndarray:
    """``score()`` of the published ``path``; StateError naming the file when its content
    is not what a run writes (a hostile or damaged output must not end in a traceback)."""
    try:
        return score()
    except (ValueError, KeyError, TypeError, RuntimeError, OSError) as err:
        raise StateError(f"{path}: cannot be read as the run's output: {err}") from None
