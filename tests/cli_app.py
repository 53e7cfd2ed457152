"""An application for the CLI tests: the test domain on the store the settings name."""

from talix_ray import LocalRuntime
from talix_ray.settings import Settings

from . import domain


def build(settings: Settings) -> LocalRuntime:
    return LocalRuntime.from_settings(settings).add(domain.service).create()


def bank(settings: Settings) -> LocalRuntime:
    from . import views_domain

    return LocalRuntime.from_settings(settings).add(views_domain.service).create()


def buggy(settings: Settings) -> LocalRuntime:
    """A factory with a defect of its own: its traceback must reach the user."""
    return settings.no_such_setting  # type: ignore[attr-defined, no-any-return]
