// PostGraphile v5 for bench/peers/run.py: the public schema of a sessiongraph database as
// it is, served as in production (no GraphiQL, no explain, no watch mode).
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({ connectionString: process.env.DATABASE_URL, schemas: ["public"] }),
  ],
  schema: {
    // Sessions sorted by a nullable column keep their NULLs last in either direction,
    // as sessiongraph sorts them (PostgreSQL puts them first for DESC).
    pgOrderByNullsLast: true,
  },
  grafserv: {
    graphiql: false,
    watch: false,
  },
  grafast: { explain: false },
};

export default preset;
