"""Runtimes beyond the in-process one. ``talix_ray.runtime.ray`` needs the ``ray`` extra."""
