// One or more PostGraphile v5 processes on one port for bench/peers/run.py. Several use
// node's cluster module, which shares the listening socket, as v4's --cluster-workers does.
//   DATABASE_URL=postgres://... node server.mjs --port 5402 [--workers 2]
import cluster from "node:cluster";
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "5678" },
    workers: { type: "string", default: "1" },
  },
});
const workers = Number(values.workers);

if (workers > 1 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code) => {
    console.error(`worker ${worker.process.pid} exited (${code})`);
    process.exitCode = 1;
  });
  const stop = () => {
    for (const worker of Object.values(cluster.workers)) worker?.kill("SIGTERM");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  const { postgraphile } = await import("postgraphile");
  const { grafserv } = await import("postgraphile/grafserv/node");
  const { default: preset } = await import("./graphile.config.mjs");
  const pgl = postgraphile(preset);
  const serv = pgl.createServ(grafserv);
  const server = createServer();
  server.keepAliveTimeout = 60_000;
  serv.addTo(server).catch((error) => {
    console.error(error);
    process.exit(1);
  });
  server.listen(Number(values.port), values.host, () => {
    console.error(`PostGraphile v5 (pid ${process.pid}) on http://${values.host}:${values.port}/graphql`);
  });
  const stop = () => {
    server.close();
    pgl.release().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
