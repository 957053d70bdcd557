from sessiongraph.cli import main

raise SystemExit(main())
