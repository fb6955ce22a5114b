"""The only modules decorated with ``@kopf.on.*``: one per kind, thin. Importing this package registers them."""

from plinth.operator.handlers import lifecycle, modeldeployment, namespacequota, previewenvironment

__all__ = ["lifecycle", "modeldeployment", "namespacequota", "previewenvironment"]
