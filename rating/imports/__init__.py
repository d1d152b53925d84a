"""Imports into pricebooks: LLM prices from genai-prices."""
