"""`python -m kdforaa` (and torchrun's `-m kdforaa`) runs the command line."""

from kdforaa.cli import main

raise SystemExit(main())
