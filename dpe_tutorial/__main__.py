from dpe_tutorial.cli import main

raise SystemExit(main())
