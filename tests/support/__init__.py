"""Test machinery shared by tests/infra and tests/integration (never imported by product code): synthesized
CDK assemblies, moto helpers."""
