"""GraphiQL, served by sessiongraph itself: the page, its files from the npm registry
(pinned, checked, installed by ``scripts/bootstrap``), and the routes that serve them."""
