"""`idaas-bridge backfill --from T1 --to T2 [--dry-run]`: events IDaaS never delivered, from its audit log."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import datetime
from pathlib import Path

from bridge.adminapi.backfill import PAGE_LIMIT, Backfill, BackfillReport
from bridge.adminapi.client import AdminApiClient, AdminApiError, parse_time, require_configured
from bridge.adminapi.recovery import lock_name, try_lock
from bridge.cli.command import Command
from bridge.cli.exits import EXIT_OK, CommandError
from bridge.cli.replay import publisher
from bridge.config import Settings
from bridge.publish.kafka import PublishError
from bridge.publish.spool import DIRECTORY_MODE


def moment(text: str) -> datetime:
    """An ISO-8601 time; without a zone it is UTC."""
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 time, e.g. 2027-03-01T08:00:00Z"
        ) from None


def print_report(report: BackfillReport, dry_run: bool) -> None:
    verb = "would publish" if dry_run else "published"
    print(f"{'TYPE':<45} {verb.upper():>14} {'DUPLICATE':>10} {'UNMAPPED':>9}")
    for kind, published, duplicate, unmapped in report.rows():
        print(f"{kind:<45} {published:>14} {duplicate:>10} {unmapped:>9}")
    print(f"{report.pages} audit page(s) read")


def backfill(settings: Settings, start: datetime, end: datetime, dry_run: bool, page_size: int) -> int:
    require_configured(
        settings.admin_api, "`backfill` reads IDaaS's audit log through the Administration API"
    )
    if end <= start:
        raise CommandError(f"--to {end.isoformat()} is not after --from {start.isoformat()}", "swap them")
    lock = None if dry_run else hold_webhook_lock(settings)
    client = AdminApiClient(settings.admin_api)

    async def run() -> BackfillReport:
        if dry_run:
            return await Backfill(settings, client, None, page_size).run(start, end, dry_run=True)
        with publisher(settings) as producer:
            return await Backfill(settings, client, producer, page_size).run(start, end)

    try:
        report = asyncio.run(run())
    except AdminApiError as exc:
        raise CommandError(
            f"Admin API at {settings.admin_api.hostname}: {exc}",
            "run the same backfill again once it answers: it resumes after the last page Kafka confirmed",
        ) from None
    except (PublishError, TimeoutError) as exc:
        raise CommandError(
            f"Kafka: {exc}",
            "run the same backfill again once Kafka is healthy: it resumes after the last confirmed page",
        ) from None
    finally:
        if lock is not None:
            os.close(lock)
    print_report(report, dry_run)
    return EXIT_OK


def hold_webhook_lock(settings: Settings) -> int:
    """The lock the bridge's automatic backfill of the first webhook holds (the command publishes as that
    webhook): two backfills reading Kafka's fingerprints at once would both publish what neither found.
    Not spool.path's own lock (bridge/publish/spool_root.py): the command runs beside the bridge."""
    webhook = settings.webhooks[0].name
    directory = Path(settings.spool.path)
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    lock = try_lock(directory / lock_name(webhook))
    if lock is None:
        raise CommandError(
            f"an automatic backfill of webhook {webhook} is running in the bridge that uses {directory}",
            f'run the command again once the bridge logged "backfill of webhook {webhook}\'s gap completed"',
        )
    return lock


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", type=moment, required=True, help="window start (ISO-8601)")
    parser.add_argument("--to", dest="end", type=moment, required=True, help="window end (ISO-8601)")
    parser.add_argument("--dry-run", action="store_true", help="read and report; publish nothing")
    parser.add_argument(
        "--page-size",
        type=int,
        choices=range(1, PAGE_LIMIT + 1),
        metavar=f"1-{PAGE_LIMIT}",
        default=PAGE_LIMIT,
        help=f"audit events per Admin API page (default {PAGE_LIMIT})",
    )


COMMAND = Command(
    description=(
        "Read IDaaS's audit log for the window through the Administration API (admin_api), reconstruct the "
        "events the mapping trusts (the user lifecycle), and publish those not already in Kafka (by "
        "fingerprint), marked as backfilled. Resumable: the checkpoint in the spool directory advances only "
        "after Kafka confirmed a page. Prints published, duplicate and unmapped counts per type."
    ),
    add_arguments=add_arguments,
    run=lambda settings, args: backfill(settings, args.start, args.end, args.dry_run, args.page_size),
)
