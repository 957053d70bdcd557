"""The GraphQL object types of SPEC §2, one module per noun, each built from a row."""
