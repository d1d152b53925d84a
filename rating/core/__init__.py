"""The rating core: terms and the pricer, the ordered policies, the poster, the one pipeline over them, and the
ledger and records they produce. It imports no storage, registry, engine, wallet or wing.
"""
