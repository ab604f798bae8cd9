"""Web plumbing: error pages, health check, security headers and request guards."""
