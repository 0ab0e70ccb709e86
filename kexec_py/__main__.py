from kexec_py.cli import main

raise SystemExit(main())
