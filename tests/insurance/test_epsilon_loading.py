"""A smaller epsilon gives noisier curves with wider DP-aware bands, and the product's
uncertainty loading must say so: two runs of one synthetic federation (the real
Coordinator and ClientApp in this process), priced with the shipped product."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from bench.datasets import load_synthetic
from bench.inprocess import run_in_process
from bench.model_runs import plan_config
from bench.model_sites import write_sites
from bench.splits import partition_by_group
from coordinator.config import load_config_or_default
from insurance.price_sheet import price_run
from insurance.product import load_product

pytestmark = pytest.mark.slow
PRODUCT = Path(__file__).parents[2] / "configs" / "product.yaml"


def test_a_smaller_epsilon_costs_a_larger_uncertainty_loading(tmp_path: Path) -> None:
    # Prepare: one federation, two runs at epsilon 0.5 and 8 per run
    data = load_synthetic(seed=2, enterprises=4, min_units=800, max_units=1500)
    base = load_config_or_default(None)
    loadings = {}
    for epsilon in (0.5, 8.0):
        config = plan_config(base, data.spec, fit="newton", epsilon=epsilon)
        sites = write_sites(
            partition_by_group(data.units), tmp_path / f"sites-{epsilon}", config.plan,
            approve_by=None,
        )  # fmt: skip
        run = run_in_process(
            sites, config, tmp_path / f"run-{epsilon}", run_id=uuid.uuid4().hex[:12]
        )
        # Execute
        sheet = price_run(run.run_dir, load_product(PRODUCT))
        loadings[epsilon] = np.array([r.uncertainty_loading for r in sheet.rows])
    # Assert: more noise, more loading, band by band
    assert (loadings[0.5] > loadings[8.0]).all()
    assert loadings[0.5].mean() > 1.5 * loadings[8.0].mean()
