"""`python -m mediasrv` is the same as the `mediasrv` command."""

from mediasrv.cli import main

raise SystemExit(main())
