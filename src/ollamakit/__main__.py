from ollamakit.cli import main

raise SystemExit(main())
