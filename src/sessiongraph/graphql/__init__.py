"""The GraphQL layer: types, resolvers, loaders and the HTTP view."""
