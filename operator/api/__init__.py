"""Plinth's Kubernetes API: the versioned models (``v1alpha1``) and the CRD/reference generator (``crdgen``)."""
