"""The component tag: every taggable resource says which component of the stack made it.

Stack-wide tags (project, stack, owner, cost centre) are the provider's `aws:defaultTags`
(Pulumi.yaml, per stack in Pulumi.<stack>.yaml); AWS merges them with these.
"""

from __future__ import annotations

COMPONENT_TAG = "mlops-kit:component"


def component_tags(component: str) -> dict[str, str]:
    return {COMPONENT_TAG: component}
