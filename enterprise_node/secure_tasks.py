"""The node's side of a securely aggregated curve round (four Flower messages).

1. ``sa_keys``: take the round's secure-aggregation settings, make fresh key pairs,
   reply with the public keys. 2. ``sa_shares``: from everyone's public keys, Shamir-
   share the self-mask seed and mask key, reply with the shares encrypted per peer.
3. ``curve`` (secure): compute the noised histogram as in the plain curve task, encode
   it, add the masks, reply with the masked vector only. 4. ``sa_unmask``: reveal the
   shares the coordinator needs to remove masks (never both kinds for one peer).

The client's secret state lives in ``context.state`` between messages, never in a reply.
"""

from __future__ import annotations

from flwr.app import ConfigRecord, Context, Message

from enterprise_node.runtime import NodeRuntime
from enterprise_node.tasks import TaskResult, noised_curve_counts
from protocols.errors import ConfigError
from protocols.messages import TaskHeader
from protocols.plan import TrainingPlan
from protocols.quantization import IntegerCodec
from protocols.secagg import SecAggClient, from_config_record, to_config_record
from protocols.secagg_messages import (
    SecAggConfig,
    encrypted_shares_from_dict,
    encrypted_shares_to_dict,
    key_directory_from_dict,
    public_keys_to_dict,
    unmask_request_from_dict,
    unmask_response_to_dict,
)
from protocols.secure_curve import (
    SECAGG_KEY,
    SECAGG_PAYLOAD_KEY,
    STATE_KEY,
    SecureCurveSettings,
    curve_vector,
)

__all__ = ["sa_keys", "sa_shares", "secure_curve", "sa_unmask"]


def _settings(message: Message) -> SecureCurveSettings:
    return SecureCurveSettings.from_record(message.content.config_records[SECAGG_KEY])


def _restore(context: Context, settings: SecureCurveSettings) -> SecAggClient:
    if STATE_KEY not in context.state.config_records:
        raise ConfigError("task refused: no secure-aggregation state for this round")
    return from_config_record(context.state.config_records[STATE_KEY], round_id=settings.round_id)


def _save(context: Context, client: SecAggClient) -> None:
    context.state[STATE_KEY] = to_config_record(client)


def _payload(message: Message) -> ConfigRecord:
    return message.content.config_records[SECAGG_PAYLOAD_KEY]


def sa_keys(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 1: fresh key pairs for this round; reply with the public halves."""
    settings = _settings(message)
    config = SecAggConfig(
        num_nodes=settings.num_nodes,
        threshold=settings.threshold,
        vector_length=settings.vector_length(plan.model_spec),
        modulus_bits=settings.modulus_bits,
    )
    client = SecAggClient(config, settings.index, settings.round_id)
    keys = client.advertise_keys()
    _save(context, client)
    return TaskResult(records={SECAGG_PAYLOAD_KEY: ConfigRecord(public_keys_to_dict(keys))})


def sa_shares(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 2: Shamir shares of the seed and mask key, encrypted to each peer."""
    client = _restore(context, _settings(message))
    directory = key_directory_from_dict(dict(_payload(message)))
    shares = client.share_keys(directory)
    _save(context, client)
    return TaskResult(records={SECAGG_PAYLOAD_KEY: ConfigRecord(encrypted_shares_to_dict(shares))})


def secure_curve(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 3: the noised histogram (budget charged), encoded and masked."""
    settings = _settings(message)
    client = _restore(context, settings)
    inbox = encrypted_shares_from_dict(dict(_payload(message)))
    noisy, receipt = noised_curve_counts(runtime, header, plan, allow_entries=False)
    vector = curve_vector(noisy.exits, noisy.survivors, settings.min_units_per_enterprise)
    codec = IntegerCodec(settings.modulus_bits, settings.num_nodes, settings.bound)
    masked = client.masked_input(codec.encode(vector), inbox)
    _save(context, client)
    metrics = {"noise-std": noisy.noise_std}
    return TaskResult(arrays={"masked": masked}, metrics=metrics, receipt=receipt)


def sa_unmask(
    runtime: NodeRuntime, header: TaskHeader, plan: TrainingPlan, message: Message, context: Context
) -> TaskResult:
    """Stage 4: the shares that let the coordinator remove the masks."""
    client = _restore(context, _settings(message))
    request = unmask_request_from_dict(dict(_payload(message)))
    response = client.unmask_response(request)
    _save(context, client)
    return TaskResult(records={SECAGG_PAYLOAD_KEY: ConfigRecord(unmask_response_to_dict(response))})
