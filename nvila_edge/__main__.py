from nvila_edge.cli import main

raise SystemExit(main())
