"""The one vocabulary of DP mechanisms: the names accountants charge, receipts and ledgers
record, and the auditor recomputes (:mod:`auditor.epsilon`). Values are the strings
written to disk since the first ledgers; they never change (a ledger names its
mechanisms for good).

Every release is charged as a Gaussian mechanism with noise multiplier z = noise std / L2
sensitivity, Poisson-subsampled at rate q (1 = none), composed ``steps`` times; a
distributed mechanism whose sum is not exactly Gaussian (discrete Gaussian shares, Skellam
shares) is charged as a Gaussian whose RDP bounds it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Mechanism", "SKELLAM_MECHANISMS"]


class Mechanism(StrEnum):
    """A DP mechanism by the name it is recorded under."""

    #: DP-SGD (Opacus) at a node: ``steps`` Poisson-subsampled Gaussian steps per round.
    DP_SGD = "dp_sgd"
    #: The curve histograms noised whole at one node (no secure aggregation).
    CURVE_HISTOGRAM = "discrete_gaussian_histogram"
    #: The curve histograms' secure sum, each node adding a discrete Gaussian share.
    DISTRIBUTED_CURVE_HISTOGRAM = "distributed_discrete_gaussian_histogram"
    #: The curve histograms' secure sum, each node adding a Skellam share
    #: (:mod:`privacy.skellam`); charged as its Gaussian equivalent.
    SKELLAM_CURVE_HISTOGRAM = "distributed_skellam_histogram"
    #: One Newton round's GLM statistics with the nodes' Skellam shares.
    SKELLAM_GLM = "distributed_skellam_glm"
    #: One Newton round of the GLM hazard model: the secure sum of clipped per-unit
    #: statistics with the nodes' discrete Gaussian shares.
    DISTRIBUTED_GLM = "distributed_discrete_gaussian_glm"
    #: Enterprise-level DP (DP-FedAvg): one Gaussian step of the secure sum of clipped
    #: updates per model round, enterprise as the unit, noise added as shares.
    ENTERPRISE_SHARES = "enterprise_distributed_discrete_gaussian"
    #: Enterprise-level DP with the nodes' Skellam shares (:mod:`privacy.skellam`).
    ENTERPRISE_SKELLAM = "enterprise_distributed_skellam"
    #: A node's fleet relative risk shared with the broker outside any run
    #: (``fedrisk-node risk --share``): two weighted sums with discrete Gaussian noise.
    RISK_FACTOR = "discrete_gaussian_risk_factor"


#: The mechanisms whose release is a secure sum of Skellam shares (:mod:`privacy.skellam`).
SKELLAM_MECHANISMS: frozenset[str] = frozenset(
    {Mechanism.SKELLAM_CURVE_HISTOGRAM, Mechanism.SKELLAM_GLM, Mechanism.ENTERPRISE_SKELLAM}
)
