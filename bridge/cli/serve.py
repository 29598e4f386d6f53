"""`idaas-bridge serve`: the webhook listener and the operations listener (bridge/servers.py), as uvicorn
servers in one process, or with `server.workers` above 1 the operations listener in this process and the
webhook listener in forked workers (bridge/workers.py)."""

from __future__ import annotations

import argparse

from bridge.cli.command import Command
from bridge.config import Settings


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from bridge import heap, logs, metrics, open_files
    from bridge.app import Bridge, create_app, create_ops_endpoints
    from bridge.publish.spool_root import hold_root
    from bridge.servers import OpsServer, PublicServer, bind, bind_group, ops_config, public_config
    from bridge.workers import run_workers, worker_count

    logs.configure(settings.logging.level)
    heap.set_malloc_thresholds()  # before the workers are forked: they inherit both
    open_files.raise_limit()
    # Before a port is bound or a worker forked: a second bridge on this spool.path stops here, and the
    # workers inherit the lock (spool_root.py).
    hold_root(settings.spool.path, settings.sources)
    server, sources = settings.server, settings.sources
    workers = worker_count(settings)
    public_sockets = bind_group(server.host, server.port, sources.name("server.port", server.port), workers)
    ops_socket = bind(server.ops_host, server.ops_port, sources.name("server.ops_port", server.ops_port))
    if workers > 1:
        return run_workers(settings, public_sockets, ops_socket)
    bridge = Bridge(settings)
    bridge.check_topics()
    metrics.WORKERS.set(1)
    ops_server = OpsServer(ops_config(create_ops_endpoints(bridge), server), ops_socket)
    heap.settle_after_startup()
    public = public_config(create_app(bridge), bridge.receiver, server, sources)
    PublicServer(public, public_sockets[0], bridge, ops_server).run()
    return 0


COMMAND = Command(
    description="Receive IDaaS webhooks, verify them and publish them to Kafka (the container's command).",
    add_arguments=lambda parser: None,
    run=serve,
)
