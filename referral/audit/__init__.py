"""The audit trail: who changed what, when, with its state before and after."""
