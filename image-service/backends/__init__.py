"""Image stage backends: how views are drawn from a prompt."""
