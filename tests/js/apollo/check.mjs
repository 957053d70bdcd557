// @apollo/client against a running sessiongraph: node check.mjs http://127.0.0.1:PORT/graphql
// Prints one JSON line per check ({"check", "ok", "detail"}) and exits 1 if any failed.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { relayStylePagination } from "@apollo/client/utilities";

const url = process.argv[2];
const results = [];
// Apollo's warnings (the control's data loss among them) go to stderr, after the results.
const warnings = [];
const warn = console.warn;
console.warn = (...args) => {
  warnings.push(args.map(String).join(" "));
};

function check(name, ok, detail) {
  results.push({ check: name, ok: Boolean(ok), detail });
}

function client(cache = new InMemoryCache()) {
  return new ApolloClient({ link: new HttpLink({ uri: url }), cache });
}

const LISTED = gql`
  query Listed {
    sessions(first: 3) {
      nodes {
        id
        status
        workflow { id name }
        operations(first: 3) { nodes { id operationType } }
      }
    }
  }
`;

// The default cache, no type policies: what has an id is normalized under Type:id.
{
  const apollo = client();
  const { data } = await apollo.query({ query: LISTED });
  const stored = apollo.cache.extract();
  const [first] = data.sessions.nodes;
  const operation = first.operations.nodes[0];
  check("Session normalized", `Session:${first.id}` in stored, `Session:${first.id}`);
  check("Operation normalized", `Operation:${operation.id}` in stored, `Operation:${operation.id}`);
  check("Operation key is its global id", operation.id.startsWith("op:"), operation.id);
  check(
    "Workflow normalized",
    first.workflow !== null && `Workflow:${first.workflow.id}` in stored,
    `Workflow:${first.workflow && first.workflow.id}`,
  );
  const refetched = await apollo.query({
    query: gql`
      query Refetch($ids: [ID!]!) {
        nodes(ids: $ids) { id ... on Session { status } ... on Operation { operationType } }
      }
    `,
    variables: { ids: [first.id, operation.id] },
  });
  const entities = (cache) => Object.keys(cache).filter((key) => key !== "ROOT_QUERY").sort();
  check(
    "nodes refetches into the same entries",
    refetched.data.nodes[0].id === first.id &&
      refetched.data.nodes[1].id === operation.id &&
      JSON.stringify(entities(apollo.cache.extract())) === JSON.stringify(entities(stored)),
    refetched.data.nodes.map((node) => `${node.__typename}:${node.id}`),
  );
}

// A fragment on the interface itself: matched once the cache knows what implements it.
{
  const ON_NODE = gql`
    query OnNode($ids: [ID!]!) { nodes(ids: $ids) { ... on Node { id } ... on Session { status } } }
  `;
  const listed = await client().query({ query: gql`query One { sessions(first: 1) { nodes { id } } }` });
  const ids = [listed.data.sessions.nodes[0].id];
  const cache = new InMemoryCache({ possibleTypes: { Node: ["Session", "Operation"] } });
  const { data } = await client(cache).query({ query: ON_NODE, variables: { ids } });
  check("... on Node with possibleTypes", data.nodes[0].id === ids[0], data.nodes[0]);
}

// Two queries selecting different fields of the same operations(first: 3): with ids they
// merge; without them (the control), the second overwrites the first.
async function twoQueries(withId) {
  const id = withId ? "id" : "";
  const A = gql(`query A { sessions(first: 1) { nodes { id operations(first: 3) { nodes { ${id} operationType } } } } }`);
  const B = gql(`query B { sessions(first: 1) { nodes { id operations(first: 3) { nodes { ${id} timestamp toolName } } } } }`);
  const apollo = client();
  await apollo.query({ query: A });
  await apollo.query({ query: B });
  const a = apollo.cache.readQuery({ query: A });
  const b = apollo.cache.readQuery({ query: B });
  return { a, b };
}
{
  const merged = await twoQueries(true);
  const ops = merged.a && merged.a.sessions.nodes[0].operations.nodes;
  check(
    "two queries of the same operations both stay readable",
    merged.a !== null && merged.b !== null && ops.length === 3 && ops.every((o) => o.operationType),
    { a: merged.a !== null, b: merged.b !== null },
  );
  const control = await twoQueries(false);
  check(
    "control: without Operation.id the first query is lost",
    control.a === null && control.b !== null,
    { a: control.a !== null, b: control.b !== null },
  );
}

// relayStylePagination: fetchMore appends the next page to the same list.
{
  const PAGE = gql`
    query Page($after: String) {
      sessions(first: 2, after: $after) {
        edges { cursor node { id } }
        pageInfo { hasNextPage endCursor }
      }
    }
  `;
  const cache = new InMemoryCache({
    typePolicies: { Query: { fields: { sessions: relayStylePagination() } } },
  });
  const apollo = client(cache);
  const watched = apollo.watchQuery({ query: PAGE });
  const pages = [];
  const subscription = watched.subscribe({ next: (result) => pages.push(result) });
  const first = await watched.refetch();
  const more = await watched.fetchMore({
    variables: { after: first.data.sessions.pageInfo.endCursor },
  });
  const listed = cache.readQuery({ query: PAGE });
  subscription.unsubscribe();
  const ids = listed.sessions.edges.map((edge) => edge.node.id);
  const direct = await client().query({
    query: gql`query Four { sessions(first: 4) { nodes { id } } }`,
  });
  check(
    "relayStylePagination pages with fetchMore",
    more.data.sessions.edges.length === 2 &&
      JSON.stringify(ids) === JSON.stringify(direct.data.sessions.nodes.map((n) => n.id)),
    ids,
  );
}

console.warn = warn;
for (const warning of warnings) {
  console.error(warning);
}
for (const result of results) {
  console.log(JSON.stringify(result));
}
process.exit(results.every((result) => result.ok) ? 0 : 1);
