"""The JSON API under /api/v1: routes, serialisation, and the OpenAPI document."""
