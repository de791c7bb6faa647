"""The node's ClientApp process: no app code runs unless the site approved the app.

Flower's SuperNode starts one ``flwr-clientapp`` process per message; Flower's own version
installs the app (FAB) that whoever submitted the run shipped, and runs *its* code. The
open-source Control API accepts runs from anyone who reaches the SuperLink (STACK.md), so
a node must never run code it was sent. ``fedrisk-node join`` puts this guard first on the
SuperNode's PATH under the name ``flwr-clientapp``. The guard pulls the task from the
SuperNode, hashes the FAB it came with (SHA-256 of the bytes, as Flower does), and runs
the fedrisk ClientApp *installed at this node* with that hash in the node config; the
ClientApp serves the task only if that app hash and the task's plan digest were approved
together (``fedrisk-node approve``), and otherwise refuses it, logs it and records it in
the node's ledger. The sent code is never installed or imported.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
from pathlib import Path

from flwr.app import Context, Message
from flwr.common.args import add_args_flwr_app_common, try_obtain_flwr_app_token
from flwr.common.constant import SubStatus
from flwr.supercore.app_utils import start_parent_process_monitor
from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.tls import validate_and_resolve_root_certificates
from flwr.supernode.runtime.run_clientapp import (
    pull_task_input,
    push_message,
    push_task_output,
)

from common.atomic import atomic_write_bytes
from protocols.app_identity import APP_HASH_KEY

__all__ = ["KEEP_SENT_ENV", "fab_hash", "keep_sent_copy", "serve_installed", "main"]

#: Set to a directory to keep a copy of every reply's bytes there (see keep_sent_copy).
KEEP_SENT_ENV = "FEDRISK_KEEP_SENT_DIR"

_log = logging.getLogger("fedrisk.node.guard")


def fab_hash(content: bytes) -> str:
    """The app's identity: SHA-256 of the FAB bytes (Flower's ``fab_hash``)."""
    return hashlib.sha256(content).hexdigest()


def serve_installed(message: Message, context: Context, app_hash: str) -> Message:
    """Run the ClientApp installed here (never the sent one), told which app was sent."""
    from enterprise_node.client_app import app

    context.node_config[APP_HASH_KEY] = app_hash
    return app(message=message, context=context)


def keep_sent_copy(reply: Message) -> None:
    """With ``FEDRISK_KEEP_SENT_DIR`` set, keep the exact bytes of ``reply`` as it will be
    pushed (every serialised object of the message) in that directory, so the site can
    inspect what left; off by default."""
    directory = os.environ.get(KEEP_SENT_ENV)
    if not directory:
        return
    blob = b"".join(obj.deflate() for obj in get_all_nested_objects(reply).values())
    path = Path(directory) / f"{time.time_ns()}-{reply.object_id[:16]}.bin"
    atomic_write_bytes(path, blob)


def run_guard(
    runtime_api_address: str,
    token: str,
    *,
    insecure: bool,
    root_certificates: bytes | None,
    parent_pid: int | None,
) -> int:
    """Pull one task from the SuperNode, serve it with the installed app, push the reply."""
    if parent_pid is not None:
        start_parent_process_monitor(parent_pid)
    retry = make_simple_http_retry_invoker()
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=insecure,
        root_certificates=root_certificates,
        interceptors=[
            RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"),
            RuntimeTokenHttpInterceptor(token),
        ],
        retry_invoker=retry,
    )
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    context: Context | None = None
    status, details, code = SubStatus.FAILED, "the fedrisk app guard failed", 1
    try:
        message, context, _run, fab = pull_task_input(client)
        reply = serve_installed(message, context, fab_hash(fab.content))
        keep_sent_copy(reply)
        push_message(client, reply, context)
        status, details, code = SubStatus.COMPLETED, "", 0
    except Exception:  # noqa: BLE001 - logged here; the SuperNode sees a failed task
        _log.exception("the fedrisk app guard could not serve the task")
    finally:
        retry.max_tries = 1
        push_task_output(client=client, context=context, sub_status=status, details=details)
        heartbeat.stop()
        client.close()
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flwr-clientapp (fedrisk guard)",
        description="Serve one Flower task with the fedrisk ClientApp installed at this node.",
    )
    parser.add_argument("--runtime-api-address", default="127.0.0.1:9094")
    add_args_flwr_app_common(parser=parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s fedrisk-guard %(message)s")
    args = _parser().parse_args(argv)
    if args.runtime_dependency_install:
        sys.exit("fedrisk nodes never install app dependencies at run time")
    certificates = validate_and_resolve_root_certificates(args.root_certificates, args.insecure)
    token = try_obtain_flwr_app_token(args)
    code = run_guard(
        args.runtime_api_address,
        token,
        insecure=args.insecure,
        root_certificates=certificates,
        parent_pid=args.parent_pid,
    )
    sys.exit(code)


if __name__ == "__main__":
    main()
