from nas.cli import main

raise SystemExit(main())
