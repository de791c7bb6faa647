"""Industry risk curves: S(t), h(t), F(t) with pointwise 95 % bands, as JSON and CSV text.

Compatibility rule: the JSON and CSV written here are read by insurers and auditors; fields
and columns are never removed and their meaning never changes. Add new ones only.

Band (log(-log) transform, as lifelines' exponential Greenwood): with V = Var S(t) (Greenwood,
optionally plus the DP-noise variance) the delta method gives
se(log(-log S)) = sqrt(V) / (S |log S|), and the 95 % band of S is
S^exp(+z se) <= S <= S^exp(-z se), z = 1.959964; hence F_lower = 1 - S^exp(-z se),
F_upper = 1 - S^exp(+z se), clipped to [0, 1]. Where S is 0 or 1 the band is the point.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.life_table import LifeTable

__all__ = [
    "CURVES_FORMAT_VERSION",
    "RiskCurve",
    "curves_to_json",
    "curves_from_json",
    "curves_csv",
]

CURVES_FORMAT_VERSION = 1
_Z95 = 1.959963984540054
_CSV_COLUMNS = ("segment", "t", "S", "h", "F", "F_lower", "F_upper")


@dataclass(frozen=True, eq=False)
class RiskCurve:
    """A segment's curve on ``edges`` (J + 1): ``survival``, ``failure`` = 1 - S and the
    95 % band ``failure_lower``/``failure_upper`` per edge; ``hazard`` h_j per interval (J).
    ``n_units``/``n_failures`` are the (possibly noisy) totals behind it; ``published``
    says whether it passed the publication rules and ``note`` why not."""

    segment: str
    edges: np.ndarray
    survival: np.ndarray
    hazard: np.ndarray
    failure: np.ndarray
    failure_lower: np.ndarray
    failure_upper: np.ndarray
    n_units: float
    n_failures: float
    published: bool = True
    note: str = ""

    @classmethod
    def from_life_table(
        cls,
        segment: str,
        lt: LifeTable,
        *,
        survival_var: np.ndarray | None = None,
        published: bool = True,
        note: str = "",
    ) -> RiskCurve:
        """Curve with a log(-log) band from ``lt.greenwood_var`` or ``survival_var``
        (Var S per edge, e.g. Greenwood plus DP-noise variance)."""
        variance = lt.greenwood_var if survival_var is None else np.asarray(survival_var, float)
        if variance.shape != lt.survival.shape:
            raise ValueError(
                f"survival_var: expected shape {lt.survival.shape}, got {variance.shape}"
            )
        s_lower, s_upper = _loglog_band(lt.survival, variance)
        return cls(
            segment=segment,
            edges=np.array(lt.edges),
            survival=np.array(lt.survival),
            hazard=np.array(lt.hazard),
            failure=1.0 - lt.survival,
            failure_lower=np.clip(1.0 - s_upper, 0.0, 1.0),
            failure_upper=np.clip(1.0 - s_lower, 0.0, 1.0),
            n_units=lt.n_units,
            n_failures=lt.n_failures,
            published=published,
            note=note,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: arrays as lists, non-finite values as None."""
        return {
            "segment": self.segment,
            "edges": _json_list(self.edges),
            "survival": _json_list(self.survival),
            "hazard": _json_list(self.hazard),
            "failure": _json_list(self.failure),
            "failure_lower": _json_list(self.failure_lower),
            "failure_upper": _json_list(self.failure_upper),
            "n_units": _json_float(self.n_units),
            "n_failures": _json_float(self.n_failures),
            "published": self.published,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RiskCurve:
        """Inverse of :meth:`to_dict` (None becomes NaN)."""
        arrays = ("edges", "survival", "hazard", "failure", "failure_lower", "failure_upper")
        values = {name: np.array(data[name], dtype=float) for name in arrays}
        return cls(
            segment=str(data["segment"]),
            n_units=float(data["n_units"]) if data["n_units"] is not None else math.nan,
            n_failures=float(data["n_failures"]) if data["n_failures"] is not None else math.nan,
            published=bool(data["published"]),
            note=str(data["note"]),
            **values,
        )


def curves_to_json(curves: Sequence[RiskCurve]) -> dict[str, Any]:
    """The curves document: ``{"format_version": 1, "curves": [curve.to_dict(), ...]}``."""
    return {"format_version": CURVES_FORMAT_VERSION, "curves": [c.to_dict() for c in curves]}


def curves_from_json(text: str | bytes) -> list[RiskCurve]:
    """The curves of a curves document (the inverse of :func:`curves_to_json`, from its
    JSON text); ValueError, KeyError or TypeError when it is not one."""
    return [RiskCurve.from_dict(c) for c in json.loads(text)["curves"]]


def curves_csv(curves: Sequence[RiskCurve], *, with_published: bool = False) -> str:
    """One row per (segment, edge t_j): S, h, F and its band; with ``with_published`` a last
    column ``published`` (true/false) marks segments withheld by the publication rules.

    ``h`` at t_j is the hazard of the interval (t_{j-1}, t_j] ending there (empty at t = 0).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS + (("published",) if with_published else ()))
    for curve in curves:
        for j, t in enumerate(curve.edges):
            hazard = "" if j == 0 else _csv_float(curve.hazard[j - 1])
            writer.writerow(
                [
                    curve.segment,
                    _csv_float(t),
                    _csv_float(curve.survival[j]),
                    hazard,
                    _csv_float(curve.failure[j]),
                    _csv_float(curve.failure_lower[j]),
                    _csv_float(curve.failure_upper[j]),
                ]
                + ([str(curve.published).lower()] if with_published else [])
            )
    return buffer.getvalue()


def _loglog_band(survival: np.ndarray, variance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95 % band of S on the log(-log) scale; the point itself at S in {0, 1}."""
    s = np.asarray(survival, float)
    inside = (s > 0.0) & (s < 1.0)
    log_s = np.log(np.where(inside, s, 0.5))
    se = np.zeros_like(s)
    np.divide(np.sqrt(np.maximum(variance, 0.0)), np.abs(s * log_s), out=se, where=inside)
    # a huge se (a cell with almost nobody at risk under noise) overflows exp to inf:
    # s ** inf = 0, the band's correct limit, so the overflow is not an error
    with np.errstate(over="ignore"):
        lower = np.where(inside, s ** np.exp(_Z95 * se), s)
        upper = np.where(inside, s ** np.exp(-_Z95 * se), s)
    return np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)


def _json_list(values: np.ndarray) -> list[float | None]:
    return [_json_float(v) for v in np.asarray(values, float)]


def _json_float(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _csv_float(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ""
