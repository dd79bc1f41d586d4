"""Deployments as files in git: `deployments/<endpoint>.yaml`, an endpoint's deployments and
the traffic split between them, checked by `validate`."""
