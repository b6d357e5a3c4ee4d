from promptstream.cli import main

raise SystemExit(main())
