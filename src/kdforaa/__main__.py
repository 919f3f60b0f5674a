"""`python -m kdforaa` (and torchrun's `-m kdforaa`) runs the command line."""

import sys

try:
    from kdforaa.cli import main
except KeyboardInterrupt:  # Ctrl-C before the command line could start: as quiet as after it
    print("kdforaa: error: interrupted (Ctrl-C)", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
