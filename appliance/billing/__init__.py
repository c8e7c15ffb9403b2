"""Prepaid billing: call pricing (integer fen, 6-second steps), the balance
and its ledger, low-balance notices, suspension and monthly caps.

The worker settles each call once, in the same transaction that closes its
record (`appliance.billing.settle`); top-ups go through
`appliance.billing.ledger`.
"""
