"""Kafka clients for the CLI's commands: quiet, and remembering why they could not get in.

librdkafka logs every failed connection attempt to stderr (dozens of lines a second), and a call that
cannot authenticate only times out: the reason ("SASL authentication failed") arrives in the error
callback. The CLI silences the log and keeps those errors, so that a failure is one line with its cause.
"""

from __future__ import annotations

from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from bridge.cli.exits import CommandError, from_kafka
from bridge.config import KafkaSettings
from bridge.publish.kafka import client_config, new_client

#: Errors more telling than the "timed out" or "transport failure" a call ends with.
TELLING_CODES: Final = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL}
)

ERROR_POLL_SECONDS: Final = 0.2
#: How long a command waits for the brokers to answer at all: long enough for a slow cluster, short
#: enough that an unreachable one is reported in seconds rather than after a command's whole budget.
CONNECT_TIMEOUT_SECONDS: Final = 10.0


class ClientErrors:
    """librdkafka's error callback for the CLI's clients: errors are kept, not printed."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []
        #: Admin clients to poll before explaining: librdkafka hands errors to the callback only in poll().
        self.clients: list[AdminClient] = []

    def __call__(self, error: KafkaError) -> None:
        self.errors.append(error)

    def telling(self) -> KafkaError | None:
        return next((error for error in reversed(self.errors) if error.code() in TELLING_CODES), None)

    def explain(self, exc: KafkaException, bootstrap: str) -> CommandError:
        """The failure to report for `exc`: the authentication or TLS error behind it, if one was seen."""
        for client in self.clients:
            client.poll(ERROR_POLL_SECONDS)
        cause = self.telling()
        return from_kafka(KafkaException(cause) if cause is not None else exc, bootstrap)


#: One per process: the CLI runs one command.
ERRORS: Final = ClientErrors()


def quiet(config: dict[str, Any]) -> dict[str, Any]:
    """A client configuration with librdkafka's log off and its errors kept in ERRORS."""
    return {**config, "log_level": 0, "error_cb": ERRORS}


def cli_admin(settings: KafkaSettings) -> AdminClient:
    admin = new_client(AdminClient, quiet(client_config(settings)), settings)
    ERRORS.clients.append(admin)
    return admin
