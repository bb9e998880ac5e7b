"""Test support: tiny models, a miniature data directory, an in-process Flower grid."""
