"""Wallets, holds and the ledger: all money is integer micro-USD."""
