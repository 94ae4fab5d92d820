"""Test machinery shared by the test directories (not product code): synthesized CDK assemblies."""
