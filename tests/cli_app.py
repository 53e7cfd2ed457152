"""An application for the CLI tests: the test domain on the store the settings name."""

from talix_ray import LocalRuntime
from talix_ray.settings import Settings

from . import domain


def build(settings: Settings) -> LocalRuntime:
    return LocalRuntime.from_settings(settings).add(domain.service).create()
