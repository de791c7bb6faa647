"""product.yaml: what the broker's standard product covers and how it is priced.

A product names the segments and equipment classes it covers, the term and the age bands
of its rate table (in the curves' time unit), the sum insured per unit, a severity model
(damage ratio of the sum insured, deductible, limit) and the loadings. Its discount,
penalty and subsidy defaults are the domain's (DOMAIN.md): sharing discount by
data-quality grade A 30 %, B 25 %, C 15 %, D 0 %; platform fee 0.5 %; first-of-kind
subsidy 40 % / 20 % / 0 % by policy year. Unknown keys are errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from common.config_file import StrictModel, load_yaml_model

__all__ = [
    "GRADES",
    "DamageRatio",
    "Severity",
    "Loadings",
    "Uncertainty",
    "Product",
    "ProductFile",
    "load_product",
]

#: The grades of the node's data-quality rating (enterprise_node.quality).
GRADES = ("A", "B", "C", "D")


class DamageRatio(StrictModel):
    """The loss of a failure as a share of the sum insured: a beta distribution with this
    ``mean`` and ``sd`` (``sd`` 0: always the mean)."""

    distribution: Literal["beta"] = "beta"
    mean: float = Field(gt=0, lt=1)
    sd: float = Field(ge=0)

    @model_validator(mode="after")
    def _feasible(self) -> DamageRatio:
        if self.sd**2 >= self.mean * (1 - self.mean):
            raise ValueError(
                f"sd {self.sd:g} is too large for a beta with mean {self.mean:g} "
                f"(needs sd^2 < mean (1 - mean) = {self.mean * (1 - self.mean):g})"
            )
        return self


class Severity(StrictModel):
    """What one failure costs the insurer: the damage ratio of the sum insured, less the
    ``deductible``, at most the ``limit`` (currency units)."""

    damage_ratio: DamageRatio
    deductible: float = Field(0.0, ge=0)
    limit: float = Field(gt=0)


class Loadings(StrictModel):
    """Shares of the gross premium for expenses, profit and risk margin, and the platform
    fee (0.5 % of each policy's premium by default)."""

    expenses: float = Field(0.20, ge=0, lt=1)
    profit: float = Field(0.05, ge=0, lt=1)
    platform_fee: float = Field(0.005, ge=0, lt=1)

    @model_validator(mode="after")
    def _below_one(self) -> Loadings:
        if self.expenses + self.profit + self.platform_fee >= 1:
            raise ValueError("expenses + profit + platform_fee must be below 1")
        return self


class Uncertainty(StrictModel):
    """The failure probability is priced at this quantile of the curve's DP-aware band
    (0.5: the curve itself; the band is 95 %, so 0.975 is its upper edge): a noisier
    curve, with a wider band, costs more."""

    band_quantile: float = Field(0.975, ge=0.5, lt=1)


class Product(StrictModel):
    """The standard product (see the module docstring)."""

    name: str = Field(min_length=1)
    segments: list[str] = Field(min_length=1)
    equipment_classes: list[str] | None = None
    term: float = Field(gt=0)
    age_bands: list[float] = Field(min_length=2)
    sum_insured: float = Field(gt=0)
    severity: Severity
    loadings: Loadings = Loadings()
    uncertainty: Uncertainty = Uncertainty()
    sharing_discount: dict[str, float] = Field(
        default_factory=lambda: {"A": 0.30, "B": 0.25, "C": 0.15, "D": 0.0}
    )
    false_data_penalty: float = Field(0.25, ge=0)
    first_of_kind_subsidy: list[float] = Field(default_factory=lambda: [0.40, 0.20, 0.0])

    @field_validator("age_bands")
    @classmethod
    def _increasing(cls, edges: list[float]) -> list[float]:
        if edges[0] < 0 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
            raise ValueError("age_bands must start at >= 0 and increase strictly")
        return edges

    @field_validator("sharing_discount")
    @classmethod
    def _grades(cls, discounts: dict[str, float]) -> dict[str, float]:
        if sorted(discounts) != sorted(GRADES):
            raise ValueError(f"give a discount for each grade {', '.join(GRADES)}")
        for grade, share in discounts.items():
            if not 0 <= share < 1:
                raise ValueError(f"grade {grade}: a discount is a share in [0, 1)")
        return discounts

    @field_validator("first_of_kind_subsidy")
    @classmethod
    def _shares(cls, subsidy: list[float]) -> list[float]:
        if not all(0 <= s < 1 for s in subsidy):
            raise ValueError("subsidies are shares in [0, 1), one per policy year")
        return subsidy


class ProductFile(StrictModel):
    """The whole of product.yaml."""

    product: Product


def load_product(path: Path) -> Product:
    """product.yaml, strictly (unknown keys are errors naming the key and the file)."""
    return load_yaml_model(ProductFile, Path(path)).product
