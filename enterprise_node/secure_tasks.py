"""The node's side of a securely aggregated round (three Flower messages, and a fourth
once per run).

1. ``advertise_keys``, at the run's first secure round (again only if the coordinator
   sets keys up anew): key pairs for every round it names, kept in the node's state; reply
   with the public keys. 2. ``share_keys``: from the neighbours' public keys, Shamir-share
   a fresh self-mask seed and the round's mask key, reply with the shares encrypted per
   peer.
3. the round's task, secure: ``curve`` (the histograms with this node's share of the
   distributed record-level noise) or ``train`` (the model update after local DP-SGD,
   clipped and with an enterprise-level noise share when the plan asks); encoded, masked,
   and only the masked vector leaves. 4. ``reveal_shares``: reveal the shares the coordinator
   needs to remove masks (never both kinds for one peer).

Distributed noise: each node adds a share (Skellam or discrete Gaussian, as the plan
says; from a CSPRNG) sized so that the fewest shares a released sum may hold are as
private as the plan asks (:mod:`enterprise_node.share_plan`,
:mod:`enterprise_node.curve_share`); the node charges its budget for that worst case. The
guarantee assumes an honest-but-curious coordinator and peers that add their shares, the
threat model of DESIGN.md; a node that will not count on its peers sets
``privacy.distributed_noise: false`` and adds the whole noise itself.

The client's secret state lives in ``context.state`` between messages, never in a reply.

A round re-run after a coordinator crash gets the same noised model update again
(re-masked under the new keys, not charged again); a secure curve contribution is released
at most once (:func:`enterprise_node.tasks.release_once`; why: the module docstring of
:mod:`enterprise_node.release_cache`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from flwr.app import ConfigRecord, Context, Message

from common.errors import ConfigError
from enterprise_node.curve_release import (
    discrete_gaussian,
)
from enterprise_node.curve_share import declared_presence, distributed_curve_counts
from enterprise_node.glm_task import glm_contribution
from enterprise_node.runtime import NodeRuntime
from enterprise_node.share_plan import check_graph, share_basis
from enterprise_node.tasks import (
    TaskResult,
    release_once,
    run_model_task,
)
from models.digest import model_digest
from models.glm import parameter_count
from privacy.skellam import skellam_noise
from protocols.messages import ARRAYS_KEY, TaskHeader
from protocols.plan import TrainingPlan
from protocols.secure_curve import (
    curve_vector,
    curve_vector_length,
)
from protocols.secure_glm import round_statistics_length
from protocols.secure_round import (
    SECAGG_KEY,
    SECAGG_PAYLOAD_KEY,
    STATE_KEY,
    THETA_KEY,
    VALUE_BOUND,
    SecureRoundSettings,
    noise_shares,
)
from protocols.secure_update import (
    EnterpriseShare,
    check_update_range,
    clip_l2,
    enterprise_share,
    flatten,
    quantise,
)
from secagg.client import (
    SecAggClient,
    client_with_run_keys,
    from_config_record,
    to_config_record,
)
from secagg.messages import (
    encrypted_shares_from_dict,
    encrypted_shares_to_dict,
    key_directory_from_dict,
    unmask_request_from_dict,
    unmask_response_to_dict,
)
from secagg.quantization import IntegerCodec
from secagg.run_keys import (
    RunKeys,
    run_keys_from_wire,
    run_keys_to_wire,
    run_public_keys_to_dict,
    setup_request_from_dict,
)

__all__ = [
    "advertise_keys",
    "share_keys",
    "secure_curve",
    "secure_model",
    "secure_newton",
    "reveal_shares",
]

#: The node's run keys in ``context.state`` (secret; :mod:`secagg.run_keys`).
RUN_KEYS_KEY = "fedrisk-secagg-run-keys"


def _settings(message: Message) -> SecureRoundSettings:
    return SecureRoundSettings.from_record(message.content.config_records[SECAGG_KEY])


def _restore(context: Context, settings: SecureRoundSettings) -> SecAggClient:
    if STATE_KEY not in context.state.config_records:
        raise ConfigError("task refused: no secure-aggregation state for this round")
    return from_config_record(context.state.config_records[STATE_KEY], round_id=settings.round_id)


def _save(context: Context, client: SecAggClient) -> None:
    context.state[STATE_KEY] = to_config_record(client)


def _payload(message: Message) -> ConfigRecord:
    return message.content.config_records[SECAGG_PAYLOAD_KEY]


def advertise_keys(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 1, once per run: fresh key pairs for the rounds the coordinator names (this
    run's only, this round among them; :mod:`secagg.run_keys`), kept in the node's state;
    reply with the public halves. A new set-up replaces the node's keys."""
    settings = _settings(message)
    check_graph(plan, settings)
    settings.secagg_config()  # the round's settings are valid
    request = setup_request_from_dict(dict(_payload(message)))
    prefix = f"{header.run_id}:"
    if settings.round_id not in request.round_ids or not all(
        r.startswith(prefix) for r in request.round_ids
    ):
        raise ConfigError(
            "task refused: the key set-up must name this round and only rounds of this run"
        )
    keys = RunKeys.generate(request)
    context.state[RUN_KEYS_KEY] = ConfigRecord(run_keys_to_wire(keys))
    reply = run_public_keys_to_dict(keys.public())
    return TaskResult(records={SECAGG_PAYLOAD_KEY: ConfigRecord(reply)})


def _run_keys(context: Context) -> RunKeys:
    if RUN_KEYS_KEY not in context.state.config_records:
        raise ConfigError("task refused: no secure-aggregation keys set up in this run")
    return run_keys_from_wire(dict(context.state.config_records[RUN_KEYS_KEY]))


def share_keys(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 2: under this round's keys from the run's set-up, Shamir shares of a fresh
    self-mask seed and of the round's mask key, encrypted to each peer."""
    settings = _settings(message)
    check_graph(plan, settings)
    client = client_with_run_keys(
        settings.secagg_config(), settings.index, settings.round_id, _run_keys(context)
    )
    directory = key_directory_from_dict(dict(_payload(message)))
    shares = client.share_keys(directory)
    _save(context, client)
    return TaskResult(records={SECAGG_PAYLOAD_KEY: ConfigRecord(encrypted_shares_to_dict(shares))})


def _masked(
    context: Context, message: Message, settings: SecureRoundSettings, vector: np.ndarray
) -> np.ndarray:
    """Encode ``vector`` in the field (range-checked) and add this node's masks."""
    client = _restore(context, settings)
    inbox = encrypted_shares_from_dict(dict(_payload(message)))
    codec = IntegerCodec(settings.modulus_bits, settings.num_nodes, settings.bound)
    masked = client.masked_input(codec.encode(vector), inbox)
    _save(context, client)
    return masked


def _check_length(settings: SecureRoundSettings, expected: int, what: str) -> None:
    if settings.vector_length != expected:
        raise ConfigError(
            f"task refused: the round's vector length {settings.vector_length} does not fit "
            f"the plan's {what} ({expected})"
        )


def secure_curve(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 3 of a curve round: histograms + noise share (budget charged), masked."""
    settings = _settings(message)
    _check_length(
        settings,
        curve_vector_length(plan.model_spec, with_entries=plan.delayed_entry),
        "curve vector",
    )
    present = declared_presence(runtime, plan)

    def contribution() -> TaskResult:
        noisy, receipt = distributed_curve_counts(runtime, header, plan, settings)
        vector = curve_vector(noisy.exits, noisy.survivors, noisy.entries, present)
        return TaskResult(
            arrays={"vector": vector}, metrics={"noise-std": noisy.noise_std}, receipt=receipt
        )

    released = release_once(
        runtime, header, plan, kind="curve", basis="", resend=False, compute=contribution
    )
    masked = _masked(context, message, settings, released.arrays["vector"])
    return TaskResult(arrays={"masked": masked}, metrics=released.metrics, receipt=released.receipt)


def secure_model(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 3 of a model round: local DP-SGD (budget charged), then the update, clipped
    and noised at enterprise level when the plan asks, quantised and masked; for a Newton
    fit, the node's clipped GLM statistics with its noise share (:func:`secure_newton`)."""
    if plan.training.method == "newton":
        return secure_newton(runtime, header, plan, message, context)
    settings = _settings(message)
    record = message.content.array_records[ARRAYS_KEY]
    global_arrays = [record[name].numpy() for name in sorted(record)]
    dimension = sum(a.size for a in global_arrays)
    _check_length(settings, dimension, "model size")
    if settings.bound != plan.secure_update.integer_bound:
        raise ConfigError("task refused: the round's value bound is not the plan's update_bound")
    # a re-sent update must fit this round: the same global model and, with enterprise
    # DP, the same threshold its noise share was sized for
    basis = model_digest(global_arrays)
    if plan.privacy.enterprise is not None:
        basis += share_basis(plan, settings)
    # No example count leaves: under secure aggregation the mean is unweighted.
    return _masked_model_release(
        runtime,
        header,
        plan,
        (message, context, settings),
        basis,
        lambda: _model_contribution(runtime, header, plan, settings, global_arrays),
    )


def _masked_model_release(
    runtime: NodeRuntime,
    header: TaskHeader,
    plan: TrainingPlan,
    round_: tuple[Message, Context, SecureRoundSettings],
    basis: str,
    compute: Callable[[], TaskResult],
) -> TaskResult:
    """A model round's contribution, released once per round (a retry on the same
    ``basis`` re-sends it uncharged), masked for this round's secure sum."""
    message, context, settings = round_
    released = release_once(
        runtime, header, plan, kind="model", basis=basis, resend=True, compute=compute
    )
    masked = _masked(context, message, settings, released.arrays["vector"])
    return TaskResult(
        arrays={"masked": masked},
        metrics=released.metrics,
        receipt=released.receipt,
        resent=released.resent,
    )


def secure_newton(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 3 of a Newton round: the GLM statistics at the coordinator's theta with this
    node's noise share (budget charged), masked; a re-run round on the same theta and
    threshold re-sends the same vector, uncharged."""
    settings = _settings(message)
    record = message.content.array_records[ARRAYS_KEY]
    if list(record) != [THETA_KEY]:
        raise ConfigError("task refused: a Newton round carries exactly one array, theta")
    theta = np.asarray(record[THETA_KEY].numpy(), dtype=np.float64)
    if theta.shape != (parameter_count(plan.model_spec),) or not np.all(np.isfinite(theta)):
        raise ConfigError("task refused: theta does not fit the plan's GLM hazard model")
    _check_length(settings, round_statistics_length(plan, header.round), "GLM statistics")
    if settings.bound != VALUE_BOUND:
        raise ConfigError("task refused: the round's value bound is not the secure sum's")
    return _masked_model_release(
        runtime,
        header,
        plan,
        (message, context, settings),
        model_digest([theta]) + share_basis(plan, settings),
        lambda: glm_contribution(runtime, header, plan, settings, theta),
    )


def _model_contribution(
    runtime: NodeRuntime,
    header: TaskHeader,
    plan: TrainingPlan,
    settings: SecureRoundSettings,
    global_arrays: list[np.ndarray],
) -> TaskResult:
    """Local DP-SGD (budget charged), then the update as an integer vector: clipped and
    with an enterprise-level noise share when the plan asks; range-checked, not masked."""
    dimension = sum(a.size for a in global_arrays)
    trained = run_model_task(runtime, header, plan, global_arrays)
    update = flatten([trained.arrays[k] for k in sorted(trained.arrays)]) - flatten(global_arrays)
    scale = plan.secure_update.scale
    metrics: dict[str, float] = {}
    enterprise = plan.privacy.enterprise
    if enterprise is None:
        vector = quantise(update, scale)
    else:
        planned = noise_shares(plan.release_fraction, settings.num_nodes, settings.threshold)
        share = enterprise_share(plan, n_shares=planned, dimension=dimension)
        vector = quantise(clip_l2(update, enterprise.clip_norm), scale)
        vector = vector + _enterprise_noise(share, vector.shape)
        metrics["enterprise-noise-std"] = share.share_std
    check_update_range(vector, settings.bound, scale)
    return TaskResult(arrays={"vector": vector}, metrics=metrics, receipt=trained.receipt)


def _enterprise_noise(share: EnterpriseShare, shape: tuple[int, ...]) -> np.ndarray:
    """One enterprise-level noise share in integers, Skellam or discrete Gaussian as planned."""
    if share.skellam:
        return skellam_noise(shape, share.share_variance)
    return discrete_gaussian(shape, share.share_sigma)


def reveal_shares(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 4: the shares that let the coordinator remove the masks."""
    client = _restore(context, _settings(message))
    request = unmask_request_from_dict(dict(_payload(message)))
    response = client.unmask_response(request)
    _save(context, client)
    return TaskResult(records={SECAGG_PAYLOAD_KEY: ConfigRecord(unmask_response_to_dict(response))})
