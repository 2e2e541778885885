"""virtkit: KVM virtual-machine management for Linux."""

__version__ = "0.1.0"
