"""Synthetic enterprises for the test federation of a canary audit (`fedrisk-lab synth
--canary-audit DIR`): the factories of :mod:`harness.synthetic`, drawn on the federation's
own spec (the audit's spec without its canaries), each unit then marked
``audit_canary: no_canary`` so that the sites serve the audit's model spec beside the
canary enterprises of ``fedrisk-audit canary plant``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import yaml

from auditor.canaries import CANARY_FEATURE, NO_CANARY, without_canaries
from common.atomic import atomic_write_bytes, atomic_write_text
from common.errors import ConfigError
from enterprise_node.config import load_node_config
from enterprise_node.ingest import read_table
from harness.synthetic import FederationManifest, SyntheticConfig, generate_federation
from models.spec import ModelSpec

__all__ = ["audit_spec_of", "synthetic_for_audit", "mark_no_canary"]


def audit_spec_of(audit_dir: Path) -> ModelSpec:
    """The model spec ``fedrisk-audit canary plant`` wrote into ``audit_dir``."""
    path = Path(audit_dir) / "model_spec.json"
    try:
        return ModelSpec.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not the model spec of a canary audit: {err}") from None


def synthetic_for_audit(
    out_dir: Path, audit_spec: ModelSpec, config: SyntheticConfig
) -> FederationManifest:
    """Synthetic factories on the federation's own spec, marked as no canaries."""
    manifest = generate_federation(out_dir, without_canaries(audit_spec), config)
    for node_yaml in manifest.node_configs:
        mark_no_canary(node_yaml)
    return manifest


def mark_no_canary(node_yaml: Path) -> None:
    """Add the column ``audit_canary`` = ``no_canary`` to the site's data file (in its own
    dialect; the other cells are written back as they were read) and map it in node.yaml."""
    config = load_node_config(node_yaml)
    path, dialect = config.data_path, config.data.csv
    table = read_table(path, config.data.format, dialect)
    table[CANARY_FEATURE] = NO_CANARY
    if path.suffix.lower() in (".parquet", ".pq") or config.data.format == "parquet":
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        atomic_write_bytes(path, buffer.getvalue())
    else:
        text = table.to_csv(index=False, sep=dialect.delimiter)
        atomic_write_bytes(path, text.encode(dialect.encoding))
    document = yaml.safe_load(Path(node_yaml).read_text(encoding="utf-8"))
    document["data"]["columns"]["covariates"][CANARY_FEATURE] = CANARY_FEATURE
    header = "# synthetic enterprise of a canary audit's test federation (no canaries)\n"
    atomic_write_text(Path(node_yaml), header + yaml.safe_dump(document, sort_keys=False))
