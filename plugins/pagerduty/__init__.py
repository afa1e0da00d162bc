"""streamspace-pagerduty: PagerDuty incidents (Events API v2) opened and resolved by events."""
