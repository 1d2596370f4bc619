"""The soak: hours of steady churn on a standing population, watched for leaks (issue 28)."""
