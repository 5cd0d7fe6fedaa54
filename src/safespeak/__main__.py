"""`python -m safespeak ...` (also what `torchrun -m safespeak train ...` runs)."""

from safespeak.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
