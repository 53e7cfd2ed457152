"""``python -m talix_ray.cli``."""

from . import main

main()
