"""The HTTP API: aiohttp app, authentication, handlers, problem details, OpenAPI."""
