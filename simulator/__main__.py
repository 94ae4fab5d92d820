"""``python -m simulator``: the Metric Sentinel command line."""

from simulator.cli import main

if __name__ == "__main__":
    main()
