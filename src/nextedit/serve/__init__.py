"""The prediction server: HTTP API, A/B arms and shadow arms, event store, metrics, dashboard."""
