"""How long a store keeps a counter after its window ends."""

# A released reservation must still find its key for a while after the window ends (a held call can be rejected
# long after it was counted); the key is dropped after this grace.
EXPIRY_GRACE_SECONDS = 60
