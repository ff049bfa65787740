"""Slack approvals: the card, its buttons and modals, over signed HTTP requests or Socket Mode.

The core sees `SlackChannel` only as an `ApprovalChannel` (service/approvals/channel.py). Every decision goes
through `approvals.service.decide`; nothing here knows who may approve.
"""
