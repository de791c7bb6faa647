"""How much of a site's model contribution is signal, told to the site before it joins.

Under DP-SGD each node trains on its own units and adds its own noise. At every step the
node sums the per-unit gradients of a Poisson batch (expected size q n, each clipped to
norm C) and adds Gaussian noise of std sigma C to the sum. The largest signal a step can
carry is q n C (every clipped gradient pointing the same way), so

    noise_to_signal = sigma / (q n)

is a lower bound on the step's noise per unit of signal: real gradients partly cancel,
and the noise falls on every coordinate of the model. sigma and q come from the plan and
the site's unit count (:func:`enterprise_node.noise_plan.plan_noise`): a small site gets
q = 1 and, since its budget must cover every round, a large sigma (e.g. 5 units, the demo
plan: q 1, sigma 12.5, noise_to_signal 2.5). Its update is then mostly noise, yet it
spends the privacy budget like any other.

Secure-sum fits (``plan.training.method: newton``, the default) do not have this problem:
their noise is added once to the sum over all sites, so a small site's units count like
any others; only ``method: dp_sgd`` plans are judged here.

Example::

    >>> outlook = contribution_outlook(5, None)
    >>> outlook.warnings[0].startswith("Only 5 units here")
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.plan import TrainingPlan

__all__ = [
    "MIN_UNITS",
    "NOISE_TO_SIGNAL_LIMIT",
    "ContributionOutlook",
    "contribution_outlook",
]

#: Fewer valid units than this: the site's DP-SGD update is mostly noise.
MIN_UNITS = 100
#: A step's noise std above this share of its largest clipped signal: mostly noise.
NOISE_TO_SIGNAL_LIMIT = 0.5
#: Training methods whose noise is added once to the sum over all sites.
_SECURE_SUM_METHODS = ("newton",)
_SECURE_SUM = (
    "Secure-sum fits (plan.training.method: newton, the default) do not have this problem: "
    "their noise is added once to the sum of all sites' statistics, not to each site's own "
    "update."
)


@dataclass(frozen=True)
class ContributionOutlook:
    """What DP-SGD makes of this site's model contribution under a plan.

    ``noise_multiplier`` (sigma), ``sample_rate`` (q) and ``noise_to_signal`` (sigma /
    (q n)) are None when the plan is not known, uses no DP-SGD, or has record-level DP off.
    """

    n_units: int
    method: str | None
    noise_multiplier: float | None
    sample_rate: float | None
    noise_to_signal: float | None
    warnings: tuple[str, ...]

    def describe(self) -> str:
        """One line of figures for reports."""
        if self.noise_to_signal is None:
            return f"{self.n_units} units; method {self.method or 'unknown (no plan)'}"
        return (
            f"{self.n_units} units; DP-SGD sample rate {self.sample_rate:.3g}, noise "
            f"multiplier {self.noise_multiplier:.3g}: each step's noise std is "
            f"{self.noise_to_signal:.2g} x the largest signal of its batch"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "n_units": self.n_units,
            "method": self.method,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "noise_to_signal": self.noise_to_signal,
            "warnings": list(self.warnings),
        }


def contribution_outlook(n_units: int, plan: TrainingPlan | None) -> ContributionOutlook:
    """The outlook of a site with ``n_units`` valid units under ``plan`` (None: unknown)."""
    if plan is None:
        return ContributionOutlook(n_units, None, None, None, None, _few_units(n_units))
    method = plan.training.method
    if method in _SECURE_SUM_METHODS or not plan.privacy.record.enabled or n_units < 1:
        return ContributionOutlook(n_units, method, None, None, None, ())
    # imported here: the accountants pull in torch and Opacus
    from enterprise_node.noise_plan import plan_noise

    noise = plan_noise(plan, n_units)
    sigma, q = noise.model_noise_multiplier, noise.sample_rate
    ratio = sigma / (q * n_units)
    warnings: tuple[str, ...] = ()
    if n_units < MIN_UNITS or ratio > NOISE_TO_SIGNAL_LIMIT:
        warnings = (_mostly_noise(n_units, sigma, q, ratio, plan),)
    return ContributionOutlook(n_units, method, sigma, q, ratio, warnings)


def _few_units(n_units: int) -> tuple[str, ...]:
    if n_units >= MIN_UNITS:
        return ()
    return (
        f"Only {n_units} units here (fewer than {MIN_UNITS}): under DP-SGD this site's "
        "model update would be mostly noise, while it spends privacy budget like any other "
        f"site. {_SECURE_SUM}",
    )


def _mostly_noise(n_units: int, sigma: float, q: float, ratio: float, plan: TrainingPlan) -> str:
    record, rounds = plan.privacy.record, plan.training.rounds
    why = (
        f"only {n_units} units (fewer than {MIN_UNITS})"
        if n_units < MIN_UNITS
        else f"{n_units} units and this plan's noise"
    )
    return (
        f"This site's contribution to the model will be mostly noise: {why}. DP-SGD samples "
        f"{q:.0%} of the units per step (sample rate {q:.3g}) and adds noise of std "
        f"{sigma:.3g} x the clip norm to their summed gradients (noise multiplier "
        f"{sigma:.3g}, for epsilon {record.epsilon:g} over {rounds} round(s)): at least "
        f"{ratio:.2g} x the signal, which is smaller still (gradients partly cancel, and "
        "the noise falls on every coordinate of the model). The shared model gains little "
        f"from this site, which still spends its privacy budget. {_SECURE_SUM}"
    )
