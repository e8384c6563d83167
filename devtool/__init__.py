"""The `roomhooks` developer tool: the local stack (`roomhooks dev`) and the command line.

It depends on `shared` and reaches a service only through that service's entry points: its
HTTP API, its process (`python -m services.<name>`), or the admin module it owns for what no
API can do (`services.registry.admin`).
"""
