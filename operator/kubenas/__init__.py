"""kubenas: Kubernetes-native neural architecture search (control plane, local runner, CLI)."""

__version__ = "0.1.0"
