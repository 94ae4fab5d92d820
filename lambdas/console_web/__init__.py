"""Deploy-time custom resource: copies the console's web files (a CDK asset zip) into the console bucket."""
