"""HTTP handlers, one module per URL group. Handlers parse, call the domain, serialize."""
