"""dockerlink: runs a hosting panel's customer containers on one Docker host."""

__version__ = "1.0.0"
