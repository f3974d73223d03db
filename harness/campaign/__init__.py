"""A campaign: Hypothesis driving checks of every implementation, bug identity, shrinking, rescue of
what a crashed run left, and replay of saved cases."""
