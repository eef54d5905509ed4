"""The card-fraud example: card transactions scored for fraud risk by a small torch MLP."""
