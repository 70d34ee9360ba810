"""The Azure SDKs are an extra: a missing one is a clear error naming the install command."""

from __future__ import annotations

from mlops_kit.errors import ConfigError

INSTALL = "pip install 'mlops-kit[azure]'"


def missing_sdk(exc: ImportError) -> ConfigError:
    name = exc.name or "an Azure SDK"
    return ConfigError(f"the azure backend needs the Azure SDKs ({name} is not installed): "
                       f"{INSTALL}")
