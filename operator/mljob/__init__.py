"""mljob-operator: Spark data preparation and Ray training as one Kubernetes pipeline."""

__version__ = "0.1.0"
