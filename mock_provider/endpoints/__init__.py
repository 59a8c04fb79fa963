"""The HTTP endpoints the mock serves, one module per API (or per family of small ones)."""
