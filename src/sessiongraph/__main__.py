import gc

gc.disable()  # while the command's own modules are imported: see cli.quick_imports
from sessiongraph.cli import main  # noqa: E402

gc.enable()

raise SystemExit(main())
