"""Tuma: the shared package of the gateway's Lambdas (domain, providers, store)."""
