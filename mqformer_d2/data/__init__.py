"""Data: dataset registrations (unified (text, box, mask) format), mappers and loaders.

See docs/data_format.md for the format every dataset is loaded into.
"""
