from mlops_kit.cli.app import main

__all__ = ["main"]
