"""The CLI's exit codes and the one-line messages for failures an operator should expect.

Scripts and Kubernetes Jobs branch on the code, so each kind of failure has its own:

- 0: done, every check passed;
- 1: the command ran and its verdict is negative (a check failed, records still refused, a simulated
  delivery failed);
- 2: usage: an unknown command or flag, a bad flag value;
- 3: configuration: the config file or an `IDAAS_BRIDGE_*` variable is wrong, or the bridge cannot start
  where it is or as installed (a port in use, a confluent-kafka release it cannot use);
- 4: runtime: Kafka unreachable, authentication or TLS failed, connection refused;
- 5: `simulate` only: IDaaS would have disabled the webhook (its streak of failed deliveries reached the
  threshold); re-enable it and backfill;
- 130: interrupted (Ctrl-C).
"""

from __future__ import annotations

import ssl
from typing import Final

from confluent_kafka import KafkaError, KafkaException

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONFIG: Final = 3
EXIT_RUNTIME: Final = 4
EXIT_WEBHOOK_DISABLED: Final = 5
EXIT_INTERRUPTED: Final = 130

#: librdkafka error codes that mean "could not get in", with what the operator should check.
_AUTHENTICATION_CODES: Final = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})
_UNREACHABLE_CODES: Final = frozenset(
    {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT, KafkaError._RESOLVE}
)


class CommandError(Exception):
    """An expected failure: `what` failed; `fix` says what to do. Printed as one line, exit EXIT_RUNTIME."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}; {fix}")
        self.what = what
        self.fix = fix


def kafka_fix(error: KafkaError) -> str:
    """What to do about a Kafka client error, by its kind."""
    code = error.code()
    if code in _AUTHENTICATION_CODES:
        return (
            "check sasl.mechanism and sasl.username in kafka.client_properties and the password in "
            "IDAAS_BRIDGE_KAFKA_CLIENT_SASL_PASSWORD"
        )
    if code == KafkaError._SSL:
        return (
            "check ssl.ca.location (the CA that signed the brokers' certificates) and the broker host names"
        )
    if code in _UNREACHABLE_CODES:
        return "check kafka.bootstrap_servers and that the brokers are up and reachable from here"
    return "see the Kafka error above and the broker's log"


def from_kafka(exc: KafkaException, bootstrap: str) -> CommandError:
    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    if error is None:
        return CommandError(f"Kafka at {bootstrap}: {exc}", "see the broker's log")
    return CommandError(f"Kafka at {bootstrap}: {error.str()}", kafka_fix(error))


def from_os_error(exc: OSError, target: str) -> CommandError:
    """A connection or TLS failure reaching `target` (a URL, a file)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return CommandError(
            f"{target}: TLS certificate not trusted ({exc.verify_message})",
            "pass --cafile with the CA (or the self-signed certificate) the server uses",
        )
    if isinstance(exc, ssl.SSLError):
        return CommandError(f"{target}: TLS failed ({exc.reason or exc})", "check the URL's scheme and port")
    if isinstance(exc, ConnectionRefusedError):
        return CommandError(f"{target}: connection refused", "check that the bridge runs and the URL's port")
    return CommandError(f"{target}: {exc.strerror or exc}", "check the address and the network")
