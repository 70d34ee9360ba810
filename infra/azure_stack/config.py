"""Azure stack configuration (`pulumi config set mlops-kit:cloud azure`): parsed and validated
here, without pulumi. Keys are the project's (Pulumi.yaml declares them) plus
azure-native:location."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_LOCATION = re.compile(r"^[a-z]+[a-z0-9]*$")  # westeurope, eastus2, ...
# Storage account names: 3-24 lowercase letters and digits, globally unique.
_PREFIX = re.compile(r"^[a-z][a-z0-9]{2,15}$")


@dataclass(frozen=True)
class AzureConfig:
    location: str
    name_prefix: str  # letters and digits only: it starts the storage account name
    alarm_email: str | None = None
    log_retention_days: int = 30
    python_version: str = "3.11"
    instance_memory_mb: int = 2048
    maximum_instance_count: int = 40
    # The Entra ID app registration that inference callers get tokens for (App Service
    # authentication validates them before the serve function runs; required).
    auth_client_id: str = ""

    @property
    def storage_account(self) -> str:
        return f"{self.name_prefix}st"


def parse_azure_config(raw: Mapping[str, Any]) -> AzureConfig:
    problems: list[str] = []
    location = str(raw.get("location") or "")
    if not _LOCATION.match(location):
        problems.append("azure-native:location: required, e.g. westeurope "
                        "(pulumi config set azure-native:location westeurope)")
    prefix = str(raw.get("namePrefix") or "").replace("-", "")
    if not _PREFIX.match(prefix):
        problems.append(f"namePrefix: {raw.get('namePrefix')!r}: on Azure, 3-16 lowercase letters "
                        "and digits after removing '-' (it starts the storage account name)")
    auth = str(raw.get("azureAuthClientId") or "")
    if not re.match(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$", auth):
        problems.append("azureAuthClientId: required on Azure: the client id (a GUID) of the "
                        "Entra ID app registration inference callers get tokens for")
    days = int(raw.get("logRetentionDays") or 30)
    if not 30 <= days <= 730:
        problems.append(f"logRetentionDays: {days}: Log Analytics keeps 30-730 days")
    if problems:
        raise ValueError("invalid stack configuration:\n  " + "\n  ".join(problems))
    return AzureConfig(location=location, name_prefix=prefix,
                       alarm_email=raw.get("alarmEmail") or None, log_retention_days=days,
                       auth_client_id=auth)
