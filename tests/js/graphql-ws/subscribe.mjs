// The graphql-ws reference client against a running sessiongraph: subscribes to the
// subscription given, prints each result as a JSON line, and exits after `count` of
// them (or on an error). Usage: node subscribe.mjs URL COUNT QUERY [VARIABLES_JSON]
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, count, query, variables] = process.argv.slice(2);
const client = createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0 });
let seen = 0;
await new Promise((resolve, reject) => {
  client.on("connected", () => console.log(JSON.stringify({ connected: true })));
  client.subscribe(
    { query, variables: variables ? JSON.parse(variables) : {} },
    {
      next: (result) => {
        console.log(JSON.stringify(result));
        seen += 1;
        if (seen >= Number(count)) resolve();
      },
      error: reject,
      complete: resolve,
    },
  );
});
await client.dispose();
