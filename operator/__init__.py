"""Plinth: a Kubernetes operator serving a declarative platform API."""
