"""CLI commands for the cloud code path: `invoke` and `emulate` (registered on mlops_kit.cli.app)."""
