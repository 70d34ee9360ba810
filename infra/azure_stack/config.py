"""Azure stack configuration (`pulumi config set mlops-kit:cloud azure`): parsed and validated
here, without pulumi. Keys are the project's (Pulumi.yaml declares them) plus
azure-native:location."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_LOCATION = re.compile(r"^[a-z]+[a-z0-9]*$")  # westeurope, eastus2, ...
# Storage account names: 3-24 lowercase letters and digits, globally unique.
_PREFIX = re.compile(r"^[a-z][a-z0-9]{2,15}$")
_GUID = re.compile(r"^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$")
# Flex Consumption's only instance sizes (learn.microsoft.com/azure/azure-functions/
# flex-consumption-plan#instance-memory): any other instanceMemoryMB is refused by ARM.
FLEX_MEMORY_MB = (512, 2048, 4096)
SUFFIX_LEN = 6  # hex characters: <prefix (16)> + "st" + suffix fits a storage account's 24


def flex_memory_mb(function: str, wanted_mb: int) -> int:
    """The smallest Flex instance size holding `wanted_mb` (the topology's memory is Lambda's,
    any MB); above the largest, refused rather than silently cut."""
    for size in FLEX_MEMORY_MB:
        if wanted_mb <= size:
            return size
    raise ValueError(f"{function}: needs {wanted_mb} MB; Flex Consumption instances have at "
                     f"most {FLEX_MEMORY_MB[-1]} MB")


def name_suffix(*parts: str) -> str:
    """A stable suffix for globally unique names (storage accounts, *.azurewebsites.net):
    derived from the subscription, project and stack, so two stacks with one namePrefix do not
    collide and a re-run keeps its names (no random provider needed)."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:SUFFIX_LEN]


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
    # Who operates the stack (uploads datasets with `--auth-mode login`, runs the CLI): gets
    # data roles on the storage account, since Owner/Contributor carry none with shared keys
    # off. Empty: whoever runs `pulumi up`.
    operator_principal_id: str = ""
    suffix: str = ""  # name_suffix(subscription, project, stack); set by the program
    # Browsers sign in to the console (/ui) through App Service authentication's login page;
    # off: every unauthenticated request is a 401 (API clients without a token get a 302 to the
    # login page when on; with a token nothing changes)
    console_sign_in: bool = False

    @property
    def storage_account(self) -> str:
        return f"{self.name_prefix}st{self.suffix}"

    @property
    def host_account(self) -> str:
        return f"{self.name_prefix}fn{self.suffix}"

    def site_name(self, function: str) -> str:
        return "-".join(p for p in (self.name_prefix, function, self.suffix) if p)


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
    if not _GUID.match(auth):
        problems.append("azureAuthClientId: required on Azure: the client id (a GUID) of the "
                        "Entra ID app registration inference callers get tokens for")
    operator = str(raw.get("azureOperatorPrincipalId") or "")
    if operator and not _GUID.match(operator):
        problems.append(f"azureOperatorPrincipalId: {operator!r}: the object id (a GUID) of the "
                        "user, group or service principal that operates the stack")
    sign_in = str(raw.get("azureConsoleSignIn") or "false").lower()
    if sign_in not in ("true", "false"):
        problems.append(f"azureConsoleSignIn: {sign_in!r}: true or false")
    days = int(raw.get("logRetentionDays") or 30)
    if not 30 <= days <= 730:
        problems.append(f"logRetentionDays: {days}: Log Analytics keeps 30-730 days")
    if problems:
        raise ValueError("invalid stack configuration:\n  " + "\n  ".join(problems))
    return AzureConfig(location=location, name_prefix=prefix,
                       alarm_email=raw.get("alarmEmail") or None, log_retention_days=days,
                       auth_client_id=auth, operator_principal_id=operator,
                       suffix=str(raw.get("suffix") or ""), console_sign_in=sign_in == "true")
