"""sessiongraph: a GraphQL API over AI-agent sessions, their operations and git facts."""

__version__ = "0.1.0"
