"""`fedrisk-node` with the enterprise's insurance command, ``risk``.

The node's commands are built by :func:`enterprise_node.cli.build_app`; ``risk`` also
prices the fleet with the broker's product, which sits above the parties, so the console
script ``fedrisk-node`` is this module, which adds it:

    fedrisk-node risk --config node.yaml --run-outputs RUN_DIR [--product product.yaml]
                      [--share grade|factor --epsilon 0.5 --yes]

Without ``--share`` nothing leaves the site and nothing is charged or recorded: the
command shows the fleet's relative risk and what each choice would cost, in premium and
in privacy. With it, exactly one release is charged to the node's budget, recorded as one
RiskShared entry in its ledger and one outbox line, and the signed message is written
for the site to send.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markup import escape

from common.cli import run_cli
from common.errors import ConfigError
from enterprise_node.cli import build_app
from enterprise_node.config import NodeConfig, load_node_config
from enterprise_node.fleet_risk import (
    RELATIVE_RISK_CLIP,
    FleetRisk,
    RunOutputs,
    fleet_risk,
    load_run_outputs,
    reference_failure,
)
from enterprise_node.risk_share import ShareOffer, offer, share_risk
from insurance.fleet_premium import FleetPremium, fleet_premium
from insurance.product import Product, load_product
from insurance.rating import rate_table
from privacy.epsilon_wording import epsilon_at, epsilon_number, lifetime_at
from protocols.app_identity import release

__all__ = ["FleetView", "assess_fleet", "show_fleet", "build_enterprise_app", "main"]

#: A share whose noise sd is above this share of the factor is called mostly noise.
_NOISY = 0.5


def _risk(
    run_outputs: Annotated[
        Path,
        typer.Option("--run-outputs", help="The run's published outputs.", readable=False),
    ],
    config: Annotated[
        Path, typer.Option("--config", "-c", help="The node's node.yaml.", readable=False)
    ] = Path("node.yaml"),
    product_path: Annotated[
        Path | None,
        typer.Option("--product", help="The broker's product.yaml (for premiums).", readable=False),
    ] = None,
    segment: Annotated[
        list[str] | None,
        typer.Option("--segment", help="Segment to weigh (default: the product's)."),
    ] = None,
    term: Annotated[
        float | None, typer.Option(help="Term in the curves' time unit (default: the product's).")
    ] = None,
    share: Annotated[
        Literal["grade", "factor"] | None,
        typer.Option("--share", help="Send the coarse risk grade or the DP-noised factor."),
    ] = None,
    epsilon: Annotated[
        float, typer.Option(help="Epsilon a share spends, at the node's cap delta.", min=0.01)
    ] = 0.5,
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Where to write the message to send.", readable=False),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Share without asking.")] = False,
) -> None:
    """The fleet's relative risk against its segments' baseline and what sharing would
    mean for its premium. Sends nothing unless --share is given."""
    node_config = load_node_config(config)
    product = load_product(product_path) if product_path is not None else None
    segments, policy_term = _scope(product, segment, term)
    outputs = load_run_outputs(run_outputs)
    view = assess_fleet(node_config, outputs, product, segments, policy_term, epsilon)
    console = Console()
    show_fleet(console, view)
    risk, terms, reference_q = view.risk, view.terms, view.reference_q
    if share is None:
        console.print(
            "Nothing was sent and nothing was charged. To share, run again with "
            "--share grade or --share factor."
        )
        return
    if not terms.affordable:
        console.print("[red]Sharing at this epsilon would pass the node's cap.[/]")
    if not yes and not sys.stdin.isatty():
        raise ConfigError(
            "risk --share: not at a terminal, so it cannot ask; nothing sent",
            advice="Pass --yes to share without asking.",
        )
    if not yes and not typer.confirm(f"Share the fleet's risk {share}?", default=False):
        console.print("Not shared; nothing sent, nothing charged.")
        return
    sent = share_risk(
        node_config, risk, reference_q, terms, shared=share, run_id=outputs.run_id, to=to
    )
    what = f"grade {sent.grade}" if share == "grade" else (
        f"factor {sent.factor:.3f} (noise sd {sent.factor_noise_sd:.3f}), grade {sent.grade}"
    )  # fmt: skip
    console.print(
        f"Shared the fleet's risk ({what}) with data-quality grade {risk.quality_grade}. "
        f"Send {escape(str(sent.message))} to the broker (SHA-256 {sent.sha256}). "
        f"Now {lifetime_at(sent.epsilon_total, terms.epsilon_cap, terms.delta)}."
    )


@dataclass(frozen=True)
class FleetView:
    """What ``risk`` shows: the fleet's risk, the terms of a share, the public reference
    q of its weights and the premiums (None without a product)."""

    risk: FleetRisk
    terms: ShareOffer
    reference_q: float
    premium: FleetPremium | None


def assess_fleet(
    config: NodeConfig,
    outputs: RunOutputs,
    product: Product | None,
    segments: Sequence[str],
    term: float,
    epsilon: float,
) -> FleetView:
    """The :class:`FleetView` of a site on a run's outputs; nothing is sent or charged."""
    risk = fleet_risk(config, outputs, segments, term)
    reference_q = reference_failure([outputs.curves[s] for s in segments], term)
    terms = offer(config, risk, reference_q, epsilon)
    premium = None
    if product is not None:
        try:
            rows = rate_table(list(outputs.curves.values()), product)
        except ValueError as err:  # a segment of the product the run did not publish
            raise ConfigError(f"product {product.name!r} on run {outputs.run_id}: {err}") from None
        premium = fleet_premium(
            rows, product, risk.unit_segments, risk.ages,
            quality_grade=risk.quality_grade,
            factor=(risk.factor, risk.factor_low, risk.factor_high),
        )  # fmt: skip
    return FleetView(risk, terms, reference_q, premium)


def show_fleet(console: Console, view: FleetView) -> None:
    """The fleet's risk and the site's choices, with their premium and privacy cost."""
    _show_risk(console, view.risk)
    _show_options(console, view.risk, view.terms, view.premium)


def _scope(
    product: Product | None, segments: list[str] | None, term: float | None
) -> tuple[list[str], float]:
    """The segments and term to weigh: given, else the product's."""
    chosen = list(segments or (product.segments if product is not None else []))
    if not chosen:
        raise ConfigError("risk: name the segment(s) with --segment, or pass --product")
    policy_term = term if term is not None else (product.term if product is not None else None)
    if policy_term is None or policy_term <= 0:
        raise ConfigError("risk: give a positive --term, or pass --product (its term)")
    return chosen, policy_term


def _show_risk(console: Console, risk: FleetRisk) -> None:
    console.print(
        f"[bold]Your fleet[/] in {', '.join(risk.segments)} over a term of {risk.term:g}: "
        f"{risk.units:,} unit(s) in service; data-quality grade {risk.quality_grade}."
    )
    console.print(
        f"Expected failures over the term: {risk.expected_model:,.1f} by the global model "
        f"with your units' covariates, {risk.expected_base:,.1f} at the industry baseline."
    )
    console.print(
        f"Relative-risk factor: [bold]{_num(risk.factor)}[/] (95 % interval "
        f"{_num(risk.factor_low)}-{_num(risk.factor_high)}; a unit counts at most "
        f"{RELATIVE_RISK_CLIP:g} times the baseline). Below 1: the model expects fewer "
        "failures than the industry's curve at the same ages."
    )
    history = risk.history
    console.print(
        f"Your own history in these segments: {history.observed:,} failure(s) among "
        f"{history.units:,} unit(s); over the same exposure the curve expected "
        f"{history.expected_base:,.1f} and the global model {history.expected_model:,.1f}."
    )
    if history.model_level_off:
        console.print(
            f"[yellow]The global model expects {history.expected_model / history.observed:.2f}"
            " times the failures you observed: its level is off for your site, so read the "
            "factor as a ranking of your units, and its level with care.[/]"
        )


def _show_options(
    console: Console, risk: FleetRisk, terms: ShareOffer, premium: FleetPremium | None
) -> None:
    cost = (
        f"costs {epsilon_at(terms.epsilon, terms.delta)} (lifetime "
        f"{epsilon_number(terms.lifetime_now)} -> {epsilon_number(terms.lifetime_after)} "
        f"of cap {terms.epsilon_cap:g})"
    )
    grades = f"the data-quality grade {risk.quality_grade}"
    if premium is None:
        prices = ["pass --product to see the premium"] * 3
    else:
        prices = [
            f"premium {_money(premium.standard)}",
            f"premium {_money(premium.sharing)} ({premium.discount:.0%} sharing discount)",
            f"premium {_money(premium.by_factor)} ({_money(premium.by_factor_low)}-"
            f"{_money(premium.by_factor_high)}) if the insurer rates by the factor",
        ]
    console.print("[bold]Your choices[/] (premiums per term):")
    console.print(f"  1. do not share (the default): nothing leaves, no privacy cost; {prices[0]}")
    console.print(
        f"  2. --share grade: sends the risk grade (lower, typical or higher) and {grades}; "
        f"{cost}; {prices[1]}"
    )
    console.print(
        f"  3. --share factor: sends the factor with noise of sd about "
        f"{_num(terms.factor_noise_sd)} and {grades}; {cost}; {prices[2]}"
    )
    if not terms.factor_noise_sd <= _NOISY * risk.factor:
        console.print(
            f"[yellow]At epsilon {epsilon_number(terms.epsilon)} a shared factor would be "
            f"mostly noise for a fleet this size (sd about {_num(terms.factor_noise_sd)} on "
            f"{_num(risk.factor)}): a larger --epsilon, or share the grade only.[/]"
        )
    if premium is not None and premium.uncovered:
        console.print(
            f"{premium.uncovered} unit(s) are older than the product's last age band: "
            "not covered, not priced."
        )


def _num(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "n/a"


def _money(value: float) -> str:
    return f"{value:,.0f}"


def build_enterprise_app() -> typer.Typer:
    """The node's commands plus ``risk``."""
    app = build_app()
    app.command("risk")(_risk)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point of ``fedrisk-node``."""
    run_cli(build_enterprise_app(), "fedrisk-node", argv, release=release)


if __name__ == "__main__":
    main()
