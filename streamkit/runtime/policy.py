"""The failure policy an app gets when its engine is given none."""

from __future__ import annotations

from dataclasses import replace

from streamkit.app import App
from streamkit.failures.handler import FailurePolicy

__all__ = ["default_failure_policy"]


def default_failure_policy(app: App) -> FailurePolicy:
    """Each processor's retry policy (retry topics set the attempts), DLQs as the app says."""
    policies = {}
    for spec in app.processors:
        policy = app.retry_policy(spec.name)
        if spec.retry_topics:
            policy = replace(policy, attempts=len(spec.retry_topics) + 1)
        policies[spec.name] = policy
    return FailurePolicy(policies, app.retry, dead_letters=app.dead_letters)
