#!/usr/bin/env python3
"""Metric Sentinel CDK app: `npx cdk synth -c preset=air-quality -c engine=builtin` (see README, deploy)."""

from infra.app import main

if __name__ == "__main__":
    main()
