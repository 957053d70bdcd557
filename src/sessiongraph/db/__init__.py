"""Storage: tables, engine and the typed query functions the GraphQL layer calls."""
