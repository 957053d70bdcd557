// sessiongraph's GraphiQL page: queries and mutations to this page's own URL over HTTP,
// subscriptions over its WebSocket (graphql-transport-ws). Loaded from the server's
// own files, as the page's Content-Security-Policy requires (no inline script).
"use strict";
(function () {
  var root = document.getElementById("graphiql");

  // A file that failed to load leaves no GraphiQL global: say so, not "Loading...".
  if (typeof GraphiQL === "undefined" || typeof GraphiQLPluginExplorer === "undefined") {
    root.textContent =
      "GraphiQL's files did not load: reinstall them with scripts/bootstrap and reload.";
    return;
  }

  var url = window.location.origin + window.location.pathname;
  var socket = new URL(url);
  socket.protocol = socket.protocol === "https:" ? "wss:" : "ws:";

  // The headers editor's headers (a token: {"Authorization": "Bearer ..."}) go with every
  // HTTP request, and with connection_init of each subscription's socket.
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: socket.href });

  var defaultQuery = [
    "# sessiongraph: write an operation, or build one in the",
    "# Explorer, and run it (Ctrl-Enter). The Docs show every type.",
    "# Subscriptions stream their events here over the WebSocket.",
    "",
    "query RecentSessions {",
    "  sessions(first: 5) {",
    "    totalCount",
    "    nodes { id status workflowName totalCostDisplay startedAt }",
    "  }",
    "}",
    "",
  ].join("\n");

  var explorer = GraphiQLPluginExplorer.explorerPlugin();
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      plugins: [explorer],
      visiblePlugin: explorer,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    })
  );
})();
