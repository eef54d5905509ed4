"""The support-tickets example: a day of customer tickets embedded with all-MiniLM-L6-v2."""
