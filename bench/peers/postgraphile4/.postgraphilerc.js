// Read by the PostGraphile v4 CLI from its working directory; bench/peers/run.py gives the
// rest as production flags on the command line.
module.exports = {
  options: {
    graphileBuildOptions: {
      // Sessions sorted by a nullable column keep their NULLs last in either
      // direction, as sessiongraph sorts them (PostgreSQL puts them first for DESC).
      orderByNullsLast: true,
    },
  },
};
