"""`idaas-bridge`: the daemon (serve) and the operator's commands, one module per command."""

from bridge.cli.exits import EXIT_CONFIG, EXIT_FAILED, EXIT_RUNTIME, EXIT_USAGE, EXIT_WEBHOOK_DISABLED
from bridge.cli.main import main

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_RUNTIME", "EXIT_USAGE", "EXIT_WEBHOOK_DISABLED", "main"]
