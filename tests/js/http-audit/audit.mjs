// Runs graphql-http's serverAudits (the GraphQL-over-HTTP spec's own audit suite)
// against the server at the URL given, one at a time, and prints one JSON line per
// audit: {id, name, status, reason}. The Python test judges the results.
import { serverAudits } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs http://127.0.0.1:PORT/graphql");
  process.exit(2);
}
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  const line = { id: audit.id, name: audit.name, status: result.status };
  if (result.status !== "ok") {
    line.reason = result.reason;
    if (result.response) {
      line.responseStatus = result.response.status;
      line.responseType = result.response.headers.get("content-type");
    }
  }
  console.log(JSON.stringify(line));
}
