"""The delivery log as the registry serves it, and redelivery and test-ping orders."""
