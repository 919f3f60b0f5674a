"""`python -m kdforaa` (and torchrun's `-m kdforaa`) runs the command line."""

try:
    from kdforaa.cli import main
except KeyboardInterrupt:  # Ctrl-C before the command line could start: as quiet as after
    raise SystemExit("kdforaa: error: interrupted (Ctrl-C)") from None

raise SystemExit(main())
