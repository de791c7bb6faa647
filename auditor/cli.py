"""`fedrisk-audit`: verify ledgers from public keys alone and write the audit report.

    fedrisk-audit verify LEDGER_DIR... --coordinator-key PEM --keys PEM... [--out DIR]
        [--coordinator HOST:PORT] [--partial]
    fedrisk-audit canary plant --plan coordinator.yaml [--canaries 300] [--out DIR]
    fedrisk-audit canary score RUN_DIR --plant DIR --coordinator-ledger DIR
        --coordinator-key PEM [--run-id ID] [--out DIR] [--ledger DIR]

``--coordinator-key`` (required) is the coordinator's public key: the ledger it signs is
the coordinator's, every other ledger a node's. Exit codes (``common/exit_codes.py``): 0
pass; 50 a ledger does not verify; 52 a cap is exceeded; 51 a claim understates the
recomputed epsilon; 53 node and coordinator ledgers disagree (when several fail, the
first in this order); 54 no error, but the ledger of a party of the run (a node the
coordinator names, or the coordinator) was not given (0 with ``--partial``: a pass with
gaps, named in the report); 2 / 10 / 40 for bad usage,
an unreadable key, an unreadable ledger. Errors are mapped to exit codes in one place,
:func:`common.cli.run_cli`.

    >>> from auditor.cli import build_app
    >>> [c.name for c in build_app().registered_commands]
    ['verify']
    >>> [g.name for g in build_app().registered_groups]
    ['canary']
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from auditor.claims import DEFAULT_TOLERANCE
from auditor.errors import AuditUsageError
from auditor.report import write_reports
from auditor.verify import AuditResult, audit
from common.cli import run_cli
from common.exit_codes import ExitCode
from protocols.app_identity import release

__all__ = ["build_app", "main"]

_console = Console()
_SHOWN_ERRORS = 20


def _verify(
    ledgers: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Ledger directories (entries.jsonl, tree_heads.jsonl).",
            metavar="LEDGER_DIR...",
            readable=False,
        ),
    ] = None,
    keys: Annotated[
        list[Path] | None,
        typer.Option(
            "--keys",
            "-k",
            help="Public keys (PEM) of the ledgers' owners.",
            show_default=False,
            readable=False,
        ),
    ] = None,
    coordinator_key: Annotated[
        Path | None,
        typer.Option(
            "--coordinator-key",
            help="The coordinator's public key (PEM), required: it tells the auditor which "
            "ledger is the coordinator's.",
            show_default=False,
            readable=False,
        ),
    ] = None,
    partial: Annotated[
        bool,
        typer.Option(
            "--partial",
            help="Audit some parties only: a missing party's ledger is a gap (exit 0, named "
            "in the report) instead of an incomplete verdict (exit 54).",
        ),
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Report directory.", readable=False)
    ] = Path("audit-report"),
    coordinator: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of the coordinator's ledger service (instead of its dir)."),
    ] = None,
    tolerance: Annotated[
        float, typer.Option(help="Largest relative understatement of a claim that passes.")
    ] = DEFAULT_TOLERANCE,
) -> None:
    """Check signatures and proofs, recompute epsilon, cross-check, write the report."""
    if coordinator_key is None:
        raise AuditUsageError("no coordinator key given (--coordinator-key PEM)")
    result = audit(
        list(ledgers or []),
        list(keys or []),
        coordinator_key=coordinator_key,
        coordinator_address=coordinator,
        tolerance=tolerance,
        partial=partial,
    )
    paths = write_reports(result, out)
    _print(result, paths)
    raise typer.Exit(int(result.exit_code))


def _canary_plant(
    plan: Annotated[
        Path,
        typer.Option(
            "--plan",
            help="The federation's coordinator.yaml (or a plan or model spec file).",
            readable=False,
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Audit directory.", readable=False)
    ] = Path("canary-audit"),
    canaries: Annotated[int, typer.Option(help="m, the number of canaries.", min=2)] = 300,
    seed: Annotated[
        int | None, typer.Option(hidden=True, help="Coins from a seed (tests only).")
    ] = None,
) -> None:
    """Draw canaries: model_spec.json and canary-sites/ for the broker, coins kept private."""
    from auditor.canary_audit import plant_audit, read_federation_plan

    spec, config = read_federation_plan(plan)
    plant = plant_audit(spec, canaries, out, seed=seed, config=config)
    _console.print(
        f"Planted {plant.m} canaries ({int(plant.included.sum())} in, the coins in "
        f"{escape(str(out / 'private'))}, keep it). Give the broker "
        f"{escape(str(out / 'model_spec.json'))} (the federation's plan.model_spec for the "
        f"test run) and the canary enterprises in {escape(str(out / 'canary-sites'))}."
    )
    if config is not None:
        _console.print(
            f"The test federation's configuration: {escape(str(out / 'coordinator.yaml'))}; "
            f"synthetic enterprises for it: fedrisk-lab synth DIR --canary-audit {escape(str(out))}"
        )


def _canary_score(
    run: Annotated[
        Path,
        typer.Argument(
            help="The run's output directory (curves.json, global_model.npz).", readable=False
        ),
    ],
    plant: Annotated[
        Path,
        typer.Option("--plant", help="The audit directory of `canary plant`.", readable=False),
    ],
    coordinator_ledger: Annotated[
        Path,
        typer.Option(
            "--coordinator-ledger", help="The coordinator's ledger directory.", readable=False
        ),
    ],
    coordinator_key: Annotated[
        Path,
        typer.Option(
            "--coordinator-key", help="The coordinator's ledger public key (PEM).", readable=False
        ),
    ],
    run_id: Annotated[
        str | None,
        typer.Option("--run-id", help="The run (default: the last over the audit's spec)."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Report directory.", readable=False)
    ] = Path("canary-report"),
    ledger: Annotated[
        Path | None,
        typer.Option(help="The auditor's ledger directory (default: OUT/ledger).", readable=False),
    ] = None,
) -> None:
    """Bound epsilon from a run's released outputs; exit 51 if a bound exceeds a claim."""
    from auditor.canary_audit import load_audit_plant, plant_file, run_from_ledger, score_run
    from auditor.canary_report import record_in_ledger, write_canary_report

    plant_path = plant_file(plant)
    planted = load_audit_plant(plant)
    recorded = run_from_ledger(coordinator_ledger, coordinator_key, planted.spec, run_id)
    result = score_run(run, planted, recorded)
    paths = write_canary_report(result, out)
    ledger_dir = out / "ledger" if ledger is None else ledger
    key = plant_path.parent / "auditor_ledger_key.pem"
    ledger_id = record_in_ledger(result, plant_path, paths[0], ledger_dir, key)
    colour = "red" if result.broken else "green"
    for name, bound, claim in (
        ("curves", result.curve, result.curve_claimed),
        ("model", result.model, result.model_claimed),
    ):
        said = "DP off" if claim is None else f"claimed {claim:.3f}"
        _console.print(f"  {name}: lower bound {bound.epsilon:.3f} ({said})")
    _console.print(
        f"[{colour}]{result.verdict.upper()}[/]: run {escape(result.run_id)}, "
        f"{result.curve.m} canaries. Report: " + ", ".join(escape(str(p)) for p in paths)
    )
    _console.print(f"Recorded in the auditor's ledger {escape(str(ledger_dir))} (key {ledger_id})")
    if result.broken:
        raise typer.Exit(int(ExitCode.AUDIT_EPSILON_MISMATCH))


def _print(result: AuditResult, paths: list[Path]) -> None:
    colour = "green" if result.verdict == "PASS" else "red"
    _console.print(
        f"[{colour}]{result.verdict}[/] (exit {int(result.exit_code)}): "
        f"{len(result.ledgers)} ledger(s), {len(result.errors)} error(s), "
        f"{len(result.warnings)} warning(s); largest relative difference of a lifetime claim "
        f"{result.largest_relative_difference:+.2e}"
    )
    for finding in result.errors[:_SHOWN_ERRORS]:
        _console.print(f"  {escape(str(finding))}")
    for gap in result.missing:
        _console.print(
            f"  missing: the ledger of {escape(gap.party)}; not checked: {gap.unchecked}"
        )
    if len(result.errors) > _SHOWN_ERRORS:
        _console.print(f"  ... and {len(result.errors) - _SHOWN_ERRORS} more in the report")
    _console.print("Report: " + ", ".join(str(p) for p in paths))


def _expand_keys(argv: list[str]) -> list[str]:
    """Let ``--keys`` take several values (``--keys a.pem b.pem``): each value up to the
    next option becomes its own ``--keys`` (click options take one value each)."""
    out: list[str] = []
    taking = False
    for arg in argv:
        if arg in ("--keys", "-k"):
            taking = True
            continue
        if arg.startswith("-"):
            taking = False
        out += ["--keys", arg] if taking else [arg]
    return out


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="fedrisk-audit",
        help="fedrisk auditor: verify signed ledgers and recomputed privacy claims.",
        no_args_is_help=True,
        add_completion=False,
        suggest_commands=False,  # click suggests already: once is enough
        pretty_exceptions_show_locals=False,
    )

    @app.callback()
    def _root() -> None:
        """fedrisk auditor: verify signed ledgers and recomputed privacy claims."""

    app.command("verify")(_verify)
    canary = typer.Typer(
        help="One-run privacy audit of a test federation with canaries.",
        no_args_is_help=True,
    )
    canary.command("plant")(_canary_plant)
    canary.command("score")(_canary_score)
    app.add_typer(canary, name="canary")
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (errors mapped to exit codes in ``common.cli.run_cli``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    run_cli(build_app(), "fedrisk-audit", _expand_keys(args), release=release)


if __name__ == "__main__":
    main()
