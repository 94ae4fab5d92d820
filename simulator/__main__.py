"""``python -m simulator``: the Metric Sentinel command line (also installed as the ``sentinel`` console script)."""

from simulator.cli import main

if __name__ == "__main__":
    main()
