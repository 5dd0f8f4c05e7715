"""campaign-generator: plan, generate and review product image campaigns with Google's image models."""

__version__ = "0.1.0"
