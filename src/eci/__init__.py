"""eci: Enhanced Container Isolation for Docker Engine on Linux."""

__version__ = "0.1.0"
