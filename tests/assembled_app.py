"""An application module that assembles a service from parts defined in another module."""

from talix_ray import Service

from . import domain

service = Service("assembled", stores=[domain.counters, domain.ledger])
