"""Alert automation Lambda: turns an alert on the SNS topic into an IoT Core command for each affected location."""
