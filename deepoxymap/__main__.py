"""``python -m deepoxymap`` runs the CLI."""

from deepoxymap.cli import main

raise SystemExit(main())
